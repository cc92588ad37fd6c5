"""Training and evaluation batches over a built data set: per-host shards, seeded shuffles, resumable
training batches, padded evaluation batches.

Training yields, per step, {"image_sound": {...}, "image_text": {...}} per-host numpy batches (the contract's
layout). Global batch k of epoch e is the stream's rows sort(perm(seed, stream, e)[k*B:(k+1)*B]) (B the
global batch) and host p of P takes its contiguous slice [p*B/P, (p+1)*B/P): any step's global batch is a
pure function of (seed, step), the same whatever the number of hosts, so a run restarted at step s
continues exactly as if it had never stopped, without replay, and on any number of hosts. Each epoch drops
the stream's last len % B rows of its order. Each host reads, by row index (data_pipelines.records), only
its own rows of each batch, in worker processes that run ahead of the step, so its memory holds a few
batches whatever the size of the data set; what grows with the data set is an index of 1 byte per row
(which modalities each row has, written beside the data set when it is built) and the epoch's order.

teacher_probs are read from the stored feature when the data set has one, else from the parallel file of
builders.teacher_probs, by row index; with neither, batches carry none.

The teacher's stream (image_batches) is every image row of a split with its class, sampled, split
between hosts and augmented by the same rules.
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from alignment.streams import STREAMS, stream_features, stream_flags
from data_pipelines import array_tables, batch_workers, paths, records
from data_pipelines import augment as augmentation
from data_pipelines.builders import teacher_probs as teacher

MODALITY_FLAGS = ("has_image", "has_sound", "has_text")
MODALITY_INDEX_DIR = "modalities"

Source: TypeAlias = "str | os.PathLike[str] | tfds.core.DatasetBuilder"
Batch: TypeAlias = "dict[str, np.ndarray]"


def _into(out: Batch | None, name: str, values: np.ndarray) -> np.ndarray:
    """values, copied into out[name] when a batch is made into given arrays (batch_workers)."""
    if out is None:
        return values
    out[name][...] = values
    return out[name]


def _builder(source: Source) -> tfds.core.DatasetBuilder:
    if isinstance(source, tfds.core.DatasetBuilder):
        return source
    return tfds.builder_from_directory(os.fspath(source))


def dataset_dir(source: Source) -> str:
    """The folder of the built data set (where word_vectors.txt, label_names.json etc. live)."""
    return os.fspath(_builder(source).data_dir)


def modality_index_path(builder: tfds.core.DatasetBuilder, split: str) -> epath.Path:
    return paths.as_path(builder.data_dir) / MODALITY_INDEX_DIR / f"{split}.npy"


def write_row_index(builder: tfds.core.DatasetBuilder) -> None:
    """Writes beside every split what reading it by row needs: which modalities each row has (uint8
    [N, 3]: has_image, has_sound, has_text), so that opening a stream does not read every row of a
    large data set, and its array tables (data_pipelines.array_tables), so that a row's arrays are one
    copy from a file rather than a record to decompress. Each split takes one pass over its records."""
    for split in builder.info.splits:
        flags = _scan_flags(builder, split)
        path = modality_index_path(builder, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.save(f, flags, allow_pickle=False)
        split_records = records.Records(builder, split, tables=False)
        logging.info(
            "data: writing the array tables of the %s split (%d rows)", split, len(split_records)
        )
        array_tables.write_split(
            array_tables.split_dir(builder.data_dir, split),
            builder.info.features,
            {name: flags[:, i].astype(bool) for i, name in enumerate(MODALITY_FLAGS)},
            functools.partial(split_records.read, stored_dtype=True),
        )


def _scan_flags(builder: tfds.core.DatasetBuilder, split: str) -> np.ndarray:
    flags = records.Records(builder, split, tables=False).read_all(MODALITY_FLAGS)
    return np.stack([flags[name] for name in MODALITY_FLAGS], axis=1).astype(np.uint8)


def _modality_flags(builder: tfds.core.DatasetBuilder, split: str) -> dict[str, np.ndarray]:
    """{has_image, has_sound, has_text: bool [N]} of a split: from the index written at build time, or
    read from the rows for a data set built without one (or a sliced split such as "train[:100]")."""
    path = modality_index_path(builder, split)
    if path.exists():
        with path.open("rb") as f:
            flags = np.load(f, allow_pickle=False)
    else:
        flags = _scan_flags(builder, split)
    return {name: flags[:, i].astype(bool) for i, name in enumerate(MODALITY_FLAGS)}


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
    split_records = records.Records(builder, split)
    return split_records.read(np.arange(process_index, len(split_records), process_count), names)


def _stream_rows(builder: tfds.core.DatasetBuilder, stream: str, split: str) -> np.ndarray:
    """Indices, in the split, of the rows holding both of the stream's modalities (ascending)."""
    flags = _modality_flags(builder, split)
    return np.flatnonzero(np.logical_and(*(flags[f] for f in stream_flags(stream))))


def stream_sizes(source: Source, split: str = "train") -> dict[str, int]:
    """{stream: number of rows of the split holding both of the stream's modalities}."""
    builder = _builder(source)
    return {stream: len(_stream_rows(builder, stream, split)) for stream in STREAMS}


def count_rows(source: Source, split: str, flag: str) -> int:
    """How many rows of the split have the boolean feature `flag` (e.g. "has_image") set."""
    return int(np.count_nonzero(_modality_flags(_builder(source), split)[flag]))


class _StreamReader:
    """A stream's features (and teacher_probs when the data set has them) of given split rows.

    teacher_probs come from the stored feature, else from the parallel file (builders.teacher_probs)
    by row index; with neither, rows carry none.
    """

    def __init__(
        self,
        builder: tfds.core.DatasetBuilder,
        stream: str,
        split: str,
        stored_dtype: bool = False,
    ):
        self.records = records.Records(builder, split)
        self.stored_dtype = stored_dtype
        self.names = list(stream_features(stream))
        self.table = None
        if "teacher_probs" in builder.info.features:
            self.names.append("teacher_probs")
        else:
            self.table = teacher.load_teacher_probs(os.fspath(builder.data_dir), split)
            if self.table is not None and len(self.table) != len(self.records):
                raise ValueError(
                    f"{teacher.teacher_probs_path(os.fspath(builder.data_dir), split)} holds "
                    f"{len(self.table)} rows, the {split} split {len(self.records)}: write the "
                    "teacher's probabilities again (python -m experiments.train_teacher "
                    "--config.teacher.source=checkpoint --config.teacher.precompute=True)"
                )

    def read(
        self, split_rows: np.ndarray, with_ids: bool = False, out: Batch | None = None
    ) -> dict[str, np.ndarray]:
        """out: arrays to read into (records.Records.read), teacher_probs included when it has them."""
        # ids are strings, read from the records: training batches do without them.
        names = [*self.names, "id"] if with_ids else self.names
        arrays = self.records.read(split_rows, names, self.stored_dtype, out)
        if self.table is not None:
            probs = np.asarray(self.table[split_rows], np.float32)
            arrays["teacher_probs"] = _into(out, "teacher_probs", probs)
        return arrays


def load_stream(
    source: Source, stream: str, split: str = "train", with_ids: bool = False
) -> dict[str, np.ndarray]:
    """Every row of a stream (rows holding both of its modalities), in stored order.

    Arrays: the stream's features, teacher_probs when available, and "id" (bytes) if with_ids.
    """
    builder = _builder(source)
    reader = _StreamReader(builder, stream, split)
    return reader.read(_stream_rows(builder, stream, split), with_ids)


class _StreamSampler:
    """Which stream positions (0 .. size-1) host p reads at each step: a pure function of (seed, step)."""

    def __init__(self, size: int, global_batch: int, seed: int, stream_id: int,
                 process_index: int = 0, process_count: int = 1):  # fmt: skip
        self.size, self.global_batch = size, global_batch
        self.host_batch = global_batch // process_count
        self.process_index = process_index
        self.steps_per_epoch = size // global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"a stream of {size} rows cannot fill one global batch of {global_batch}"
            )
        self.seed, self.stream_id = seed, stream_id

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


def _stream_sampler(
    builder: tfds.core.DatasetBuilder,
    stream: str,
    split: str,
    global_batch: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> _StreamSampler:
    size = len(_stream_rows(builder, stream, split))
    stream_id = list(STREAMS).index(stream)
    return _StreamSampler(size, global_batch, seed, stream_id, process_index, process_count)


def _host_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
    """Host p's rows [p*b, (p+1)*b) of a global batch, b = global_batch_size // process_count."""
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch {global_batch_size} is not divisible by {process_count} hosts"
        )
    host_batch = global_batch_size // process_count
    return slice(process_index * host_batch, (process_index + 1) * host_batch)


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
    workers: int = 0,
    augment: augmentation.AugmentConfig | None = None,
) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Endless per-host training batches from `start_step` on, made by `workers` processes
    (data_pipelines.batch_workers; 0: in this process, each when asked for), each process up to
    `prefetch` steps ahead of the consumer.

    Yields {"image_sound": {"image": uint8 [b,H,W,3], "sound": float [b,T,F], "teacher_probs"?},
    "image_text": {"image", "text": float [b,L,D], "text_mask": bool [b,L], "teacher_probs"?}}
    (sound and text in their stored dtype, float32 or float16: the train step widens float16)
    with b = global_batch_size // process_count: host p's rows [p*b, (p+1)*b) of the global batch, which
    depends on (seed, step) only, not on process_count. `augment` (data_pipelines.augment) transforms
    each batch with draws that also depend on (seed, step) only; with a sound window, "sound" is
    [b, augment.sound_steps, F].
    """
    builder = _builder(source)
    stored_steps = builder.info.features["sound"].shape[0]
    if augment is not None and augment.is_identity(stored_steps):
        augment = None
    make = _PairBatches(
        os.fspath(builder.data_dir), global_batch_size, seed, process_index, process_count, split,
        tuple(streams), augment,
    )  # fmt: skip
    make.open(builder)  # here, so that a stream too small for the batch is refused at once
    return _read_ahead(make, start_step, workers, prefetch)


class _Batches(abc.ABC):
    """make(step) of a training stream, picklable: a worker process opens the data set again."""

    data_dir: str
    _opened: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": None}

    def __call__(self, step: int, out: Any = None) -> Any:
        if self._opened is None:
            self.open(_builder(self.data_dir))
        return self.make(step, out)

    @abc.abstractmethod
    def open(self, builder: tfds.core.DatasetBuilder) -> None:
        """Opens the readers the batches need (in each process that makes them)."""

    @abc.abstractmethod
    def make(self, step: int, out: Any = None) -> Any:
        """The host's batch of `step`; with `out` (a batch of the same layout), made into its arrays."""


class _PairBatches(_Batches):
    def __init__(self, data_dir: str, global_batch_size: int, seed: int, process_index: int,
                 process_count: int, split: str, streams: tuple[str, ...],
                 augment: augmentation.AugmentConfig | None):  # fmt: skip
        self.data_dir, self.global_batch_size, self.seed = data_dir, global_batch_size, seed
        self.process_index, self.process_count = process_index, process_count
        self.split, self.streams, self.augment = split, streams, augment
        self.host_rows = _host_slice(global_batch_size, process_index, process_count)
        self._opened: Any = None

    def open(self, builder: tfds.core.DatasetBuilder) -> None:
        self._opened = {
            stream: (
                _StreamReader(builder, stream, self.split, stored_dtype=True),
                _stream_rows(builder, stream, self.split),
                _stream_sampler(
                    builder,
                    stream,
                    self.split,
                    self.global_batch_size,
                    self.seed,
                    self.process_index,
                    self.process_count,
                ),  # fmt: skip
            )
            for stream in self.streams
        }

    def make(self, step: int, out: Any = None) -> dict[str, dict[str, np.ndarray]]:
        return {
            stream: self._stream(stream, step, None if out is None else out[stream])
            for stream in self.streams
        }

    def _stream(self, stream: str, step: int, out: Batch | None) -> dict[str, np.ndarray]:
        reader, split_rows, sampler = self._opened[stream]
        rows = reader.read(
            split_rows[sampler.host_rows(step)], out=out if self.augment is None else None
        )
        if self.augment is None:
            return rows
        rng = augmentation.batch_rng(self.seed, list(STREAMS).index(stream), step)
        augmented = augmentation.augment(
            rows, self.augment, rng, self.global_batch_size, self.host_rows
        )
        return {name: _into(out, name, values) for name, values in augmented.items()}


def _read_ahead(make: _Batches, start_step: int, workers: int, prefetch: int) -> Iterator[Any]:
    """make(start_step), make(start_step + 1), ...: made by `workers` processes (batch_workers), each
    up to `prefetch` steps ahead; with workers=0, each when it is asked for, in this process."""
    if workers:
        yield from batch_workers.batches(make, start_step, workers, prefetch)
        return
    step = start_step
    while True:
        yield make(step)
        step += 1


# The teacher's stream: its own permutation seeds, apart from the pair streams' (0, 1).
IMAGE_STREAM_ID = len(STREAMS)


def image_rows(source: Source, split: str = "train") -> np.ndarray:
    """Indices, in the split, of the rows holding an image (ascending)."""
    return np.flatnonzero(_modality_flags(_builder(source), split)["has_image"])


def image_batches(
    source: Source,
    global_batch_size: int,
    label: str,
    *,
    seed: int = 0,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    split: str = "train",
    prefetch: int = 2,
    workers: int = 0,
    augment: augmentation.AugmentConfig | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless per-host batches of the split's image rows and their classes, from `start_step` on:
    {"image": uint8 [b, H, W, 3], "label": int32 [b]} (label -1 where the row has none), b =
    global_batch_size // process_count, sampled, split between hosts and augmented as train_batches'
    streams are (a pure function of (seed, step)). label: the stored feature ("fine_label", "label")."""
    builder = _builder(source)
    make = _ImageBatches(
        os.fspath(builder.data_dir), global_batch_size, label, seed, process_index, process_count,
        split, augment,
    )  # fmt: skip
    make.open(builder)
    return _read_ahead(make, start_step, workers, prefetch)


class _ImageBatches(_Batches):
    def __init__(self, data_dir: str, global_batch_size: int, label: str, seed: int,
                 process_index: int, process_count: int, split: str,
                 augment: augmentation.AugmentConfig | None):  # fmt: skip
        self.data_dir, self.global_batch_size, self.label, self.seed = (
            data_dir, global_batch_size, label, seed,
        )  # fmt: skip
        self.process_index, self.process_count = process_index, process_count
        self.split, self.augment = split, augment
        self.host_rows = _host_slice(global_batch_size, process_index, process_count)
        self._opened: Any = None

    def open(self, builder: tfds.core.DatasetBuilder) -> None:
        rows = image_rows(builder, self.split)
        sampler = _StreamSampler(len(rows), self.global_batch_size, self.seed, IMAGE_STREAM_ID,
                                 self.process_index, self.process_count)  # fmt: skip
        self._opened = (records.Records(builder, self.split), rows, sampler)

    def make(self, step: int, out: Any = None) -> dict[str, np.ndarray]:
        split_records, rows, sampler = self._opened
        batch = split_records.read(rows[sampler.host_rows(step)], ("image", self.label))
        batch = {"image": batch["image"], "label": batch[self.label].astype(np.int32)}
        if self.augment is not None:
            rng = augmentation.batch_rng(self.seed, IMAGE_STREAM_ID, step)
            batch = augmentation.augment(
                batch, self.augment, rng, self.global_batch_size, self.host_rows
            )
        return {name: _into(out, name, values) for name, values in batch.items()}


def pad_batch(arrays: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Arrays of n <= size rows zero-padded to `size` rows (empty strings for strings), with a bool
    "mask" [size] that is True on the n given rows."""
    batch = {}
    for name, values in arrays.items():
        shape = (size - len(values), *values.shape[1:])
        # Stored strings come back as bytes objects (records.Records): np.zeros would pad them with 0.
        padding = (
            np.full(shape, b"", object) if values.dtype == object else np.zeros(shape, values.dtype)
        )
        batch[name] = np.concatenate([values, padding])
    count = len(next(iter(arrays.values()))) if arrays else 0
    batch["mask"] = np.arange(size) < count
    return batch


def eval_batches(
    source: Source,
    split: str,
    global_batch_size: int,
    *,
    features: Sequence[str] = ("image", "sound", "text", "text_mask", "label"),
    rows: Sequence[int] | np.ndarray | None = None,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, Any]]:
    """Every row of a split (or the split rows `rows`, in their order) exactly once, in fixed-size
    per-host batches with a bool "mask" (pad_batch), each read by row index when it is asked for: a
    host holds one batch whatever the size of the split.

    Host p reads positions i % process_count == p of the rows; every host yields the same number of
    batches of global_batch_size // process_count rows, zero-padded at the end with mask False.
    """
    host_batch = _host_batch(global_batch_size, process_count)
    split_records = records.Records(_builder(source), split)
    chosen = np.arange(len(split_records)) if rows is None else np.asarray(rows, np.int64)
    host_rows = chosen[process_index::process_count]
    for b in range(_eval_batch_count(len(chosen), host_batch, process_count)):
        batch_rows = host_rows[b * host_batch : (b + 1) * host_batch]
        yield pad_batch(split_records.read(batch_rows, features), host_batch)


def num_eval_batches(
    source: Source, split: str, global_batch_size: int, process_count: int = 1
) -> int:
    """How many batches eval_batches yields on every host over the whole split."""
    total = _builder(source).info.splits[split].num_examples
    return _eval_batch_count(total, _host_batch(global_batch_size, process_count), process_count)


def _host_batch(global_batch_size: int, process_count: int) -> int:
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch {global_batch_size} is not divisible by {process_count} hosts"
        )
    return global_batch_size // process_count


def _eval_batch_count(total: int, host_batch: int, process_count: int) -> int:
    largest_shard = -(-total // process_count)
    return -(-largest_shard // host_batch)
