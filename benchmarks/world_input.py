"""Input-pipeline throughput: data_pipelines.input_pipeline.train_batches over a built world data set."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from data_pipelines import input_pipeline
from experiments.runtime import datasets


def world_builder(config: Any, scratch: str) -> Any:
    """The built world data set of config.data: data/tfds's if one is built there, else the small world
    (same stored shapes) built into `scratch`."""
    existing = datasets.make_builder(config.data)
    if datasets.is_built(existing):
        return existing
    small = config.copy_and_resolve_references()
    with small.unlocked():
        small.data.builder_config = "small"
        small.data.data_dir = os.path.join(scratch, "tfds")
    return datasets.build(small.data)


def measure(config: Any, *, steps: int = 200, warmup: int = 5) -> dict[str, Any]:
    """Examples per second that train_batches yields (both streams, config.batch_size rows each), timed
    over `steps` batches after `warmup` (which include loading the split into memory)."""
    with tempfile.TemporaryDirectory(prefix="bench-world-") as scratch:
        start = time.perf_counter()
        builder = world_builder(config, scratch)
        build_s = time.perf_counter() - start
        batches = input_pipeline.train_batches(builder, config.batch_size, seed=config.seed)
        start = time.perf_counter()
        for _ in range(warmup):
            next(batches)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            batch = next(batches)
        elapsed = time.perf_counter() - start
        batches.close()
        examples = sum(len(next(iter(stream.values()))) for stream in batch.values())
        return {
            "data_set": f"{builder.name}/{builder.builder_config.name}",
            "train_rows": builder.info.splits["train"].num_examples,
            "has_teacher_probs": any("teacher_probs" in s for s in batch.values()),
            "build_or_open_s": build_s,
            "first_batches_s": first_s,
            "steps": steps,
            "examples_per_step": examples,
            "examples_per_s": steps * examples / elapsed,
        }
