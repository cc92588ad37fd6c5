"""tf.data streams over a built data set: per-host shards, seeded shuffles, resumable training batches,
padded evaluation batches.

Training yields, per step, {"image_sound": {...}, "image_text": {...}} per-host numpy batches (the contract's
layout). Each host holds its shard of each stream in memory (every process_count-th row of the stream) and
draws batch k of epoch e as rows perm(seed, stream, e)[k*B:(k+1)*B]: any step's batch is a pure function of
(seed, step), so a run restarted at step s continues exactly as if it had never stopped, without replay.
All hosts run the same number of steps per epoch (the smallest shard's), dropping the remainder.

teacher_probs are read from the stored feature when the data set has one, else from the parallel file of
builders.teacher_probs, joined by id; with neither, batches carry none.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from data_pipelines.builders import teacher_probs as teacher

STREAM_FEATURES = {
    "image_sound": ("image", "sound"),
    "image_text": ("image", "text", "text_mask"),
}
STREAM_FLAGS = {"image_sound": ("has_image", "has_sound"), "image_text": ("has_image", "has_text")}
_READ_BATCH = 1024

Source: TypeAlias = "str | os.PathLike[str] | tfds.core.DatasetBuilder"


def _builder(source: Source) -> tfds.core.DatasetBuilder:
    if isinstance(source, tfds.core.DatasetBuilder):
        return source
    return tfds.builder_from_directory(os.fspath(source))


def dataset_dir(source: Source) -> str:
    """The folder of the built data set (where word_vectors.txt, label_names.json etc. live)."""
    return os.fspath(_builder(source).data_dir)


def _read(
    builder: tfds.core.DatasetBuilder, split: str, names: Sequence[str], keep: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The named features of the split's rows (in stored order), only rows i with keep[i] if given."""
    decoders = tfds.decode.PartialDecoding(dict.fromkeys(names, True))
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
    if keep is not None:
        keep_tensor = tf.constant(keep)
        ds = ds.enumerate().filter(lambda i, _: tf.gather(keep_tensor, i)).map(lambda _, ex: ex)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for chunk in tfds.as_numpy(ds.batch(_READ_BATCH)):
        for name in names:
            parts[name].append(chunk[name])
    features = builder.info.features
    return {
        name: np.concatenate(parts[name])
        if parts[name]
        else np.zeros((0, *features[name].shape), features[name].np_dtype)
        for name in names
    }


def load_split(
    source: Source,
    split: str,
    features: Sequence[str] | None = None,
    process_index: int = 0,
    process_count: int = 1,
) -> dict[str, np.ndarray]:
    """A whole split (or this host's shard: rows i with i % process_count == process_index) as numpy.

    features: names to read (default: all stored ones). Strings come back as bytes arrays.
    """
    builder = _builder(source)
    names = list(features) if features is not None else list(builder.info.features.keys())
    size = builder.info.splits[split].num_examples
    keep = None
    if process_count > 1:
        keep = np.arange(size) % process_count == process_index
    return _read(builder, split, names, keep)


def _teacher_table(builder: tfds.core.DatasetBuilder, split: str) -> dict[str, np.ndarray] | None:
    return teacher.load_teacher_probs(os.fspath(builder.data_dir), split)


def load_stream(
    source: Source,
    stream: str,
    split: str = "train",
    process_index: int = 0,
    process_count: int = 1,
    with_ids: bool = False,
) -> tuple[dict[str, np.ndarray], int]:
    """This host's shard of a stream (rows holding both of its modalities) and the stream's global size.

    Arrays: the stream's features, teacher_probs when available, and "id" (bytes) if with_ids.
    """
    builder = _builder(source)
    flags = _read(builder, split, STREAM_FLAGS[stream], None)
    rows = np.flatnonzero(np.logical_and(*(flags[f] for f in STREAM_FLAGS[stream])))
    keep = np.zeros(builder.info.splits[split].num_examples, bool)
    keep[rows[process_index::process_count]] = True
    stored = builder.info.features.keys()
    names = list(STREAM_FEATURES[stream]) + ["id"]
    table = None
    if "teacher_probs" in stored:
        names.append("teacher_probs")
    else:
        table = _teacher_table(builder, split)
    arrays = _read(builder, split, names, keep)
    if table is not None:
        arrays["teacher_probs"] = teacher.lookup_teacher_probs(table, arrays["id"])
    if not with_ids:
        del arrays["id"]
    return arrays, int(rows.size)


class _StreamSampler:
    """Batch `step` of a stream's host shard: rows perm(seed, stream, epoch)[k*B:(k+1)*B]."""

    def __init__(self, arrays: dict[str, np.ndarray], global_size: int, host_batch: int, seed: int,
                 stream_id: int, process_count: int):  # fmt: skip
        self.arrays = arrays
        self.shard_size = next(iter(arrays.values())).shape[0]
        self.host_batch = host_batch
        self.steps_per_epoch = (global_size // process_count) // host_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"a stream of {global_size} rows over {process_count} hosts cannot fill one batch of "
                f"{host_batch} per host"
            )
        self.seed, self.stream_id = seed, stream_id

    @functools.lru_cache(maxsize=2)  # noqa: B019 -- one sampler per stream, lives as long as the iterator
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self.stream_id, epoch]).permutation(
            self.shard_size
        )

    def batch(self, step: int) -> dict[str, np.ndarray]:
        epoch, k = divmod(step, self.steps_per_epoch)
        rows = np.sort(self._permutation(epoch)[k * self.host_batch : (k + 1) * self.host_batch])
        return {name: values[rows] for name, values in self.arrays.items()}


def train_batches(
    source: Source,
    global_batch_size: int,
    *,
    seed: int = 0,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    split: str = "train",
    streams: Sequence[str] = ("image_sound", "image_text"),
    prefetch: int = 2,
) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Endless per-host training batches from `start_step` on.

    Yields {"image_sound": {"image": uint8 [b,H,W,3], "sound": float32 [b,T,F], "teacher_probs"?},
    "image_text": {"image", "text": float32 [b,L,D], "text_mask": bool [b,L], "teacher_probs"?}}
    with b = global_batch_size // process_count. The same (seed, step) always gives the same batch.
    """
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch {global_batch_size} is not divisible by {process_count} hosts"
        )
    host_batch = global_batch_size // process_count
    builder = _builder(source)
    samplers = {}
    for stream in streams:
        arrays, size = load_stream(builder, stream, split, process_index, process_count)
        stream_id = list(STREAM_FEATURES).index(stream)
        samplers[stream] = _StreamSampler(arrays, size, host_batch, seed, stream_id, process_count)
    layout = [(stream, name) for stream in streams for name in sorted(samplers[stream].arrays)]
    dtypes = [tf.as_dtype(samplers[s].arrays[n].dtype) for s, n in layout]

    def make(step: np.int64) -> list[np.ndarray]:
        batches = {stream: sampler.batch(int(step)) for stream, sampler in samplers.items()}
        return [batches[s][n] for s, n in layout]

    steps = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max)
    ds = steps.map(lambda step: tf.numpy_function(make, [step], dtypes, stateful=False))
    for values in ds.prefetch(prefetch).as_numpy_iterator():
        batch: dict[str, dict[str, np.ndarray]] = {stream: {} for stream in streams}
        for (stream, name), value in zip(layout, values, strict=True):
            batch[stream][name] = value
        yield batch


def eval_batches(
    source: Source,
    split: str,
    global_batch_size: int,
    *,
    features: Sequence[str] = ("image", "sound", "text", "text_mask", "label"),
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, Any]]:
    """Every row of a split exactly once, in fixed-size per-host batches with a bool "mask".

    Host p reads rows i % process_count == p; every host yields the same number of batches of
    global_batch_size // process_count rows, zero-padded at the end with mask False.
    """
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch {global_batch_size} is not divisible by {process_count} hosts"
        )
    host_batch = global_batch_size // process_count
    builder = _builder(source)
    total = builder.info.splits[split].num_examples
    arrays = load_split(builder, split, features, process_index, process_count)
    largest_shard = -(-total // process_count)
    num_batches = -(-largest_shard // host_batch)
    for b in range(num_batches):
        start = b * host_batch
        batch: dict[str, Any] = {}
        for name, values in arrays.items():
            chunk = values[start : start + host_batch]
            pad = host_batch - chunk.shape[0]
            filler = np.full(
                (pad, *chunk.shape[1:]), b"" if chunk.dtype == object else 0, chunk.dtype
            )
            batch[name] = np.concatenate([chunk, filler])
        count = max(0, min(host_batch, len(next(iter(arrays.values()))) - start))
        batch["mask"] = np.arange(host_batch) < count
        yield batch


def num_eval_batches(
    source: Source, split: str, global_batch_size: int, process_count: int = 1
) -> int:
    """How many batches eval_batches yields on every host."""
    total = _builder(source).info.splits[split].num_examples
    host_batch = global_batch_size // process_count
    largest_shard = -(-total // process_count)
    return -(-largest_shard // host_batch)
