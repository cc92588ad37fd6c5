"""Evaluation cost: embedding throughput per modality and the time to rank N items."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from alignment import parallel, retrieval
from alignment.models import create_model, init_params
from benchmarks import common
from experiments.runtime.embedding import embed_modality


def measure_embedding(
    config: Any, *, items: int = 2048, batch_size: int = 256, repeats: int = 3
) -> dict[str, Any]:
    """Items per second through embed_modality (make_embed_fn, padded fixed batches) for each modality,
    median of `repeats` passes over `items` random inputs after one warm-up pass (compilation)."""
    mesh = parallel.make_mesh()
    model = create_model(config.model)
    params = jax.jit(
        lambda rng: init_params(model, rng), compiler_options=parallel.init_compiler_options()
    )(jax.random.PRNGKey(0))
    embed_fn = parallel.make_embed_fn(model, mesh)
    host = common.synthetic_batch(config, items)
    arrays = {**host["image_sound"], **host["image_text"]}
    batch_size -= batch_size % jax.device_count()
    result = {"items": items, "batch_size": batch_size}
    for modality in ("image", "sound", "text"):

        def one_pass(modality: str = modality) -> None:
            embed_modality(embed_fn, params, arrays, modality, list(config.eval_layers), batch_size)

        timing = common.timed(one_pass, warmup=1, repeats=repeats)
        result[f"{modality}_items_per_s"] = items / timing["median_s"]
    return result


def measure_ranking(sizes: tuple[int, ...] = (5000, 25000), dim: int = 256) -> dict[str, Any]:
    """Seconds for retrieval.ranks on N random [N, dim] pairs and for paper_median_rank (chunks of
    1,000), one timed call each after a warm-up on a small input."""
    rng = np.random.default_rng(0)
    retrieval.ranks(rng.standard_normal((100, dim)), rng.standard_normal((100, dim)))
    result: dict[str, Any] = {"dim": dim}
    for n in sizes:
        queries = rng.standard_normal((n, dim), dtype=np.float32)
        gallery = rng.standard_normal((n, dim), dtype=np.float32)
        result[f"ranks_{n}_s"] = common.timed(
            lambda q=queries, g=gallery: retrieval.ranks(q, g), warmup=0, repeats=1
        )["median_s"]
        result[f"paper_median_rank_{n}_s"] = common.timed(
            lambda q=queries, g=gallery: retrieval.paper_median_rank(q, g), warmup=0, repeats=1
        )["median_s"]
    return result
