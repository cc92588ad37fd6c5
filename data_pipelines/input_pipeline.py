"""Training and evaluation batches over a built data set: per-host shards, seeded shuffles, resumable
training batches, padded evaluation batches.

Training yields, per step, {"image_sound": {...}, "image_text": {...}} per-host numpy batches (the contract's
layout). Global batch k of epoch e is the stream's rows sort(perm(seed, stream, e)[k*B:(k+1)*B]) (B the
global batch) and host p of P takes its contiguous slice [p*B/P, (p+1)*B/P): any step's global batch is a
pure function of (seed, step), the same whatever the number of hosts, so a run restarted at step s
continues exactly as if it had never stopped, without replay, and on any number of hosts. Each epoch drops
the stream's last len % B rows of its order. Each host reads, by row index (data_pipelines.records), only
its own rows of each batch, in `workers` parallel reads that run ahead of the step, so its memory holds a
few batches whatever the size of the data set; what grows with the data set is an index of 1 byte per row
(which modalities each row has, written beside the data set when it is built) and the epoch's order.

teacher_probs are read from the stored feature when the data set has one, else from the parallel file of
builders.teacher_probs, joined by id; with neither, batches carry none.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from alignment.streams import STREAMS, stream_features, stream_flags
from data_pipelines import augment as augmentation
from data_pipelines import paths, records
from data_pipelines.builders import teacher_probs as teacher

MODALITY_FLAGS = ("has_image", "has_sound", "has_text")
MODALITY_INDEX_DIR = "modalities"

Source: TypeAlias = "str | os.PathLike[str] | tfds.core.DatasetBuilder"


def _builder(source: Source) -> tfds.core.DatasetBuilder:
    if isinstance(source, tfds.core.DatasetBuilder):
        return source
    return tfds.builder_from_directory(os.fspath(source))


def dataset_dir(source: Source) -> str:
    """The folder of the built data set (where word_vectors.txt, label_names.json etc. live)."""
    return os.fspath(_builder(source).data_dir)


def modality_index_path(builder: tfds.core.DatasetBuilder, split: str) -> epath.Path:
    return paths.as_path(builder.data_dir) / MODALITY_INDEX_DIR / f"{split}.npy"


def write_modality_index(builder: tfds.core.DatasetBuilder) -> None:
    """Writes, for every split, which modalities each row has (uint8 [N, 3]: has_image, has_sound,
    has_text), so that opening a stream does not read every row of a large data set."""
    for split in builder.info.splits:
        flags = _scan_flags(builder, split)
        path = modality_index_path(builder, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.save(f, flags, allow_pickle=False)


def _scan_flags(builder: tfds.core.DatasetBuilder, split: str) -> np.ndarray:
    flags = records.Records(builder, split).read_all(MODALITY_FLAGS)
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
    joined by id; with neither, rows carry none.
    """

    def __init__(self, builder: tfds.core.DatasetBuilder, stream: str, split: str):
        self.records = records.Records(builder, split)
        self.names = [*stream_features(stream), "id"]
        self.table = None
        if "teacher_probs" in builder.info.features:
            self.names.append("teacher_probs")
        else:
            self.table = teacher.load_teacher_probs(os.fspath(builder.data_dir), split)

    def read(self, split_rows: np.ndarray, with_ids: bool = False) -> dict[str, np.ndarray]:
        arrays = self.records.read(split_rows, self.names)
        if self.table is not None:
            arrays["teacher_probs"] = teacher.lookup_teacher_probs(self.table, arrays["id"])
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
    workers: int = 2,
    augment: augmentation.AugmentConfig | None = None,
) -> Iterator[dict[str, dict[str, np.ndarray]]]:
    """Endless per-host training batches from `start_step` on; `workers` batches are read and
    decoded in parallel (in order), `prefetch` more wait ready.

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
    readers = {stream: _StreamReader(builder, stream, split) for stream in streams}
    split_rows = {stream: _stream_rows(builder, stream, split) for stream in streams}
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
        rows = readers[stream].read(split_rows[stream][samplers[stream].host_rows(step)])
        if augment is None:
            return rows
        rng = augmentation.batch_rng(seed, list(STREAMS).index(stream), step)
        return augmentation.augment(rows, augment, rng, global_batch_size, host_rows)

    def make(step: int) -> dict[str, dict[str, np.ndarray]]:
        return {stream: batch_at(stream, step) for stream in streams}

    # Threads, not processes: reading an ArrayRecord row and copying its arrays release the GIL, and a
    # thread needs no copy of the reader. The pool finishes its running reads when the caller stops.
    with concurrent.futures.ThreadPoolExecutor(max(1, workers), "train-input") as pool:
        ahead = max(1, workers) + prefetch
        pending = collections.deque(pool.submit(make, start_step + i) for i in range(ahead))
        next_step = start_step + ahead
        try:
            while True:
                batch = pending.popleft().result()
                pending.append(pool.submit(make, next_step))
                next_step += 1
                yield batch
        finally:
            for future in pending:
                future.cancel()


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
