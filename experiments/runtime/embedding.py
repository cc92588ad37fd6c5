"""Embeds whole arrays of one modality in fixed-size, padded, sharded batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np

from experiments.runtime.logs import Progress

MODALITY_INPUTS = {"image": "image", "sound": "sound", "text": "text"}
# Shorter runs of batches finish too soon to need progress lines.
PROGRESS_MIN_BATCHES = 8


def eval_batch_size() -> int:
    """Embedding batch: about 256, a multiple of the device count."""
    devices = jax.device_count()
    return max(devices, 256 - 256 % devices)


def embed_modality(
    embed_fn: Callable,
    params,
    arrays: dict[str, np.ndarray],
    modality: str,
    layers: Sequence[str],
    batch_size: int,
    progress: str | None = None,
) -> dict[str, np.ndarray]:
    """Representations of every item of `arrays[modality]` ([N, ...]) at `layers` -> {layer: [N, D]}.

    The last batch is padded to `batch_size` (a multiple of the device count) and the padding dropped,
    so every item is embedded exactly once and the jitted function compiles once. With `progress`, a
    progress line under that name at each quarter of a long run of batches.
    """
    inputs = arrays[MODALITY_INPUTS[modality]]
    masks = arrays.get("text_mask") if modality == "text" else None
    n = len(inputs)
    if batch_size % jax.device_count():
        raise ValueError(
            f"eval batch size {batch_size} must be a multiple of the {jax.device_count()} devices"
        )
    outputs: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    batches = -(-n // batch_size)
    lines = Progress(progress, n) if progress and batches >= PROGRESS_MIN_BATCHES else None
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        x = _pad_rows(inputs[start:stop], batch_size)
        mask = None if masks is None else _pad_rows(masks[start:stop], batch_size)
        reps = embed_fn(params, x, modality, mask)
        fetched = jax.device_get({layer: reps[layer] for layer in layers})
        for layer in layers:
            outputs[layer].append(np.asarray(fetched[layer][: stop - start], np.float32))
        done = start // batch_size + 1
        if lines is not None and (done % -(-batches // 4) == 0 or done == batches):
            lines.update(stop)
    return {layer: np.concatenate(chunks) for layer, chunks in outputs.items()}


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    if len(x) == rows:
        return x
    padding = np.zeros((rows - len(x), *x.shape[1:]), x.dtype)
    return np.concatenate([x, padding])
