"""Embeds rows in fixed-size, padded, sharded batches: batches streamed from a split, or arrays in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import jax
import numpy as np

from alignment.streams import MODALITY_INPUTS
from data_pipelines import input_pipeline
from experiments.runtime.logs import Progress

# Shorter runs of batches finish too soon to need progress lines.
PROGRESS_MIN_BATCHES = 8


def eval_batch_size() -> int:
    """Embedding batch: about 256, a multiple of the device count."""
    devices = jax.device_count()
    return max(devices, 256 - 256 % devices)


def modality_features(modalities: Iterable[str]) -> list[str]:
    """The stored features the network reads for these modalities, e.g. ["image", "text", "text_mask"]."""
    return [name for m in modalities for name in MODALITY_INPUTS[m]]


def embed_batches(
    embed_fn: Callable,
    params,
    batches: Iterable[Mapping[str, np.ndarray]],
    layers: Mapping[str, Sequence[str]],
    total: int,
    progress: str | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Representations of the real rows of padded batches -> {modality: {layer: float32 [total, D]}}.

    batches: dicts of [B, ...] inputs (modality_features of every modality in `layers`) and a bool
      "mask" [B], True on a prefix of real rows (input_pipeline.pad_batch); B a multiple of the
      device count and the same in every batch, so the jitted function compiles once.
    layers: {modality: layers to keep}.
    total: the number of real rows in all batches.
    progress: a progress line under this name at each quarter of a long run of batches.

    Only the outputs stay: the batches are read as they are embedded, one at a time.
    """
    outputs: dict[str, dict[str, np.ndarray]] = {m: {} for m in layers}
    done, lines = 0, None
    for count, batch in enumerate(batches, 1):
        if count == 1:
            lines = _progress_lines(progress, total, len(batch["mask"]))
        real = int(np.count_nonzero(batch["mask"]))
        for modality, names in layers.items():
            mask = batch["text_mask"] if modality == "text" else None
            reps = embed_fn(params, batch[MODALITY_INPUTS[modality][0]], modality, mask)
            fetched = jax.device_get({layer: reps[layer] for layer in names})
            for layer in names:
                out = outputs[modality].get(layer)
                if out is None:
                    # Filled in place: concatenating per-batch pieces would hold the outputs twice.
                    out = np.empty((total, *fetched[layer].shape[1:]), np.float32)
                    outputs[modality][layer] = out
                out[done : done + real] = fetched[layer][:real]
        done += real
        if lines is not None:
            lines(count, done)
    if done != total:
        raise ValueError(f"the batches held {done} rows, not the {total} announced")
    return outputs


def embed_modality(
    embed_fn: Callable,
    params,
    arrays: Mapping[str, np.ndarray],
    modality: str,
    layers: Sequence[str],
    batch_size: int,
    progress: str | None = None,
) -> dict[str, np.ndarray]:
    """Representations of every item of in-memory `arrays` ([N, ...] modality_features of `modality`)
    at `layers` -> {layer: [N, D]}.

    The last batch is padded to `batch_size` (a multiple of the device count) and the padding dropped,
    so every item is embedded exactly once and the jitted function compiles once; the batches are the
    ones a split streamed through input_pipeline.eval_batches would give.
    """
    if batch_size % jax.device_count():
        raise ValueError(
            f"eval batch size {batch_size} must be a multiple of the {jax.device_count()} devices"
        )
    names = modality_features([modality])
    n = len(arrays[names[0]])
    batches = (
        input_pipeline.pad_batch({k: arrays[k][s : s + batch_size] for k in names}, batch_size)
        for s in range(0, n, batch_size)
    )
    return embed_batches(embed_fn, params, batches, {modality: list(layers)}, n, progress)[modality]


def _progress_lines(
    what: str | None, total: int, batch_size: int
) -> Callable[[int, int], None] | None:
    """(batches done, rows done) -> a progress line at each quarter of the batches, or None."""
    batches = -(-total // batch_size)
    if not what or batches < PROGRESS_MIN_BATCHES:
        return None
    lines = Progress(what, total)
    quarter = -(-batches // 4)

    def update(count: int, rows: int) -> None:
        if count % quarter == 0 or count == batches:
            lines.update(rows)

    return update
