"""tf.data streams over a built data set: per-host shards, seeded shuffles, resumable training batches,
padded evaluation batches.

Training yields, per step, {"image_sound": {...}, "image_text": {...}} per-host numpy batches (the contract's
layout). Global batch k of epoch e is the stream's rows sort(perm(seed, stream, e)[k*B:(k+1)*B]) (B the
global batch) and host p of P takes its contiguous slice [p*B/P, (p+1)*B/P): any step's global batch is a
pure function of (seed, step), the same whatever the number of hosts, so a run restarted at step s
continues exactly as if it had never stopped, without replay, and on any number of hosts. Each epoch drops
the stream's last len % B rows of its order. A single host holds its whole stream in memory; with several,
each reads, at the start of every epoch, only the rows its slices of that epoch need (1/P of the stream).

teacher_probs are read from the stored feature when the data set has one, else from the parallel file of
builders.teacher_probs, joined by id; with neither, batches carry none.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from alignment.streams import STREAMS, stream_features, stream_flags
from data_pipelines import augment as augmentation
from data_pipelines.builders import teacher_probs as teacher

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


def _stream_rows(builder: tfds.core.DatasetBuilder, stream: str, split: str) -> np.ndarray:
    """Indices, in the split, of the rows holding both of the stream's modalities (ascending)."""
    flags = _read(builder, split, stream_flags(stream), None)
    return np.flatnonzero(np.logical_and(*(flags[f] for f in stream_flags(stream))))


def stream_sizes(source: Source, split: str = "train") -> dict[str, int]:
    """{stream: number of rows of the split holding both of the stream's modalities}."""
    builder = _builder(source)
    return {stream: len(_stream_rows(builder, stream, split)) for stream in STREAMS}


def count_rows(source: Source, split: str, flag: str) -> int:
    """How many rows of the split have the boolean feature `flag` (e.g. "has_image") set."""
    builder = _builder(source)
    return int(np.count_nonzero(_read(builder, split, (flag,), None)[flag]))


def _read_stream(
    builder: tfds.core.DatasetBuilder,
    stream: str,
    split: str,
    split_rows: np.ndarray,
    with_ids: bool = False,
) -> dict[str, np.ndarray]:
    """The stream's features (and teacher_probs when available) of the given split rows, ascending."""
    keep = np.zeros(builder.info.splits[split].num_examples, bool)
    keep[split_rows] = True
    names = [*stream_features(stream), "id"]
    table = None
    if "teacher_probs" in builder.info.features:
        names.append("teacher_probs")
    else:
        table = _teacher_table(builder, split)
    arrays = _read(builder, split, names, keep)
    if table is not None:
        arrays["teacher_probs"] = teacher.lookup_teacher_probs(table, arrays["id"])
    if not with_ids:
        del arrays["id"]
    return arrays


def load_stream(
    source: Source, stream: str, split: str = "train", with_ids: bool = False
) -> dict[str, np.ndarray]:
    """Every row of a stream (rows holding both of its modalities), in stored order.

    Arrays: the stream's features, teacher_probs when available, and "id" (bytes) if with_ids.
    """
    builder = _builder(source)
    return _read_stream(builder, stream, split, _stream_rows(builder, stream, split), with_ids)


class _StreamSampler:
    """This host's slice of each global batch of a stream; rows are read an epoch at a time.

    read(positions) returns the stream's arrays at the given ascending positions (0 .. size-1).
    """

    def __init__(self, read: Callable[[np.ndarray], dict[str, np.ndarray]], size: int,
                 global_batch: int, seed: int, stream_id: int, process_index: int = 0,
                 process_count: int = 1):  # fmt: skip
        self.read, self.size, self.global_batch = read, size, global_batch
        self.host_batch = global_batch // process_count
        self.process_index, self.process_count = process_index, process_count
        self.steps_per_epoch = size // global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"a stream of {size} rows cannot fill one global batch of {global_batch}"
            )
        self.seed, self.stream_id = seed, stream_id
        self._held: tuple[int | None, np.ndarray, dict[str, np.ndarray]] | None = None

    @functools.lru_cache(maxsize=2)  # noqa: B019 -- one sampler per stream, lives as long as the iterator
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self.stream_id, epoch]).permutation(self.size)

    def global_rows(self, step: int) -> np.ndarray:
        """Stream positions of global batch `step`, ascending."""
        epoch, k = divmod(step, self.steps_per_epoch)
        B = self.global_batch
        return np.sort(self._permutation(epoch)[k * B : (k + 1) * B])

    def host_rows(self, step: int) -> np.ndarray:
        start = self.process_index * self.host_batch
        return self.global_rows(step)[start : start + self.host_batch]

    def _epoch_key(self, step: int) -> int | None:
        """Which rows to hold for `step`: the whole stream (None) on one host, else its epoch's."""
        return None if self.process_count == 1 else step // self.steps_per_epoch

    def _rows_held(self, key: int | None) -> np.ndarray:
        """Ascending stream positions to hold in memory: all, or this host's rows of epoch `key`."""
        if key is None:
            return np.arange(self.size)
        first = key * self.steps_per_epoch
        steps = range(first, first + self.steps_per_epoch)
        return np.unique(np.concatenate([self.host_rows(step) for step in steps]))

    def batch(self, step: int) -> dict[str, np.ndarray]:
        key = self._epoch_key(step)
        if self._held is None or self._held[0] != key:
            self._held = None  # free the previous epoch's rows before reading the next
            positions = self._rows_held(key)
            self._held = (key, positions, self.read(positions))
        _, positions, arrays = self._held
        local = np.searchsorted(positions, self.host_rows(step))
        return {name: values[local] for name, values in arrays.items()}


def _stream_sampler(
    builder: tfds.core.DatasetBuilder,
    stream: str,
    split: str,
    global_batch: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> _StreamSampler:
    split_rows = _stream_rows(builder, stream, split)

    def read(positions: np.ndarray) -> dict[str, np.ndarray]:
        return _read_stream(builder, stream, split, split_rows[positions])

    stream_id = list(STREAMS).index(stream)
    return _StreamSampler(
        read, len(split_rows), global_batch, seed, stream_id, process_index, process_count
    )


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
    augment: augmentation.AugmentConfig | None = None,
) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Endless per-host training batches from `start_step` on.

    Yields {"image_sound": {"image": uint8 [b,H,W,3], "sound": float32 [b,T,F], "teacher_probs"?},
    "image_text": {"image", "text": float32 [b,L,D], "text_mask": bool [b,L], "teacher_probs"?}}
    with b = global_batch_size // process_count: host p's rows [p*b, (p+1)*b) of the global batch, which
    depends on (seed, step) only, not on process_count. `augment` (data_pipelines.augment) transforms
    each batch with draws that also depend on (seed, step) only; with a sound window, "sound" is
    [b, augment.sound_steps, F].
    """
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch {global_batch_size} is not divisible by {process_count} hosts"
        )
    builder = _builder(source)
    samplers = {
        stream: _stream_sampler(
            builder, stream, split, global_batch_size, seed, process_index, process_count
        )
        for stream in streams
    }
    stored_steps = builder.info.features["sound"].shape[0]
    if augment is not None and augment.is_identity(stored_steps):
        augment = None
    host_rows = slice(
        process_index * (global_batch_size // process_count),
        (process_index + 1) * (global_batch_size // process_count),
    )

    def batch_at(stream: str, step: int) -> dict[str, np.ndarray]:
        rows = samplers[stream].batch(step)
        if augment is None:
            return rows
        rng = augmentation.batch_rng(seed, list(STREAMS).index(stream), step)
        return augmentation.augment(rows, augment, rng, global_batch_size, host_rows)

    first = {stream: batch_at(stream, start_step) for stream in streams}
    layout = [(stream, name) for stream in streams for name in sorted(first[stream])]
    dtypes = [tf.as_dtype(first[s][n].dtype) for s, n in layout]

    def make(step: np.int64) -> list[np.ndarray]:
        batches = {stream: batch_at(stream, int(step)) for stream in streams}
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
