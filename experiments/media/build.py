"""The indexing job: every item of a source folder embedded by a run, shard by shard, resumable.

The scan (scan.iter_items) is streamed twice: once to count the items (for the progress line's ETA),
once to embed them shard_size at a time. A shard already in the index folder is skipped, so a rerun
after an interruption embeds only the shards missing; memory holds one shard's inputs and embeddings
whatever the number of items. A file that cannot be read is a counted skip (reason, path, detail),
never an error.
"""

from __future__ import annotations

import collections
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from absl import logging

from alignment.streams import MODALITIES
from data_pipelines.audio import SilentAudioError
from data_pipelines.words import NoKnownWordError
from experiments.media import scan, store
from experiments.media.embedder import Embedder, stack_inputs
from experiments.runtime.logs import Progress
from experiments.search.index import UnknownWordsError

DEFAULT_SHARD_SIZE = 1024
# What reading one file can raise besides ValueError: a skip, not the end of the job.
READ_ERRORS = (ValueError, OSError, RuntimeError, EOFError)


def build_index(
    embedder: Embedder,
    source: str,
    index_dir: str,
    dtype: str = "float32",
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> dict[str, Any]:
    """Embeds every item of `source` into `index_dir` (format: store.py); returns index.json's dict.

    Raises ValueError for a bad dtype or shard size, or an index folder made with other settings.
    """
    if dtype not in store.DTYPES:
        raise ValueError(f"--dtype={dtype!r}: expected one of {store.DTYPES}")
    if shard_size < 1:
        raise ValueError(f"--shard_size must be positive, got {shard_size}")
    source = os.path.abspath(source)
    meta: dict[str, Any] = {
        "run": embedder.settings(),
        "source": source,
        "dtype": dtype,
        "shard_size": shard_size,
    }
    store.check_resumable(index_dir, meta)
    store.write_meta(index_dir, meta)
    total = sum(1 for _ in scan.iter_items(source))
    done = set(store.shard_numbers(index_dir))
    progress = Progress("index items", total)
    root, count, shards = scan.root_of(source), 0, 0
    for number, chunk in enumerate(_chunks(scan.iter_items(source), shard_size)):
        if number not in done:
            store.write_shard(index_dir, number, embed_shard(embedder, root, chunk, dtype))
        count += len(chunk)
        shards = number + 1
        progress.update(count)
    # Shards past the end belong to a tree that has since shrunk.
    for number in store.shard_numbers(index_dir):
        if number >= shards:
            os.remove(store.shard_path(index_dir, number))
    meta.update(summarize(index_dir), shards=shards, complete=True)
    store.write_meta(index_dir, meta)
    logging.info("index: %s", {k: meta[k] for k in ("items", "skipped", "shards")})
    return meta


def embed_shard(
    embedder: Embedder, root: str, items: Sequence[scan.Item], dtype: str
) -> dict[str, np.ndarray]:
    """One shard's arrays (store.py): each modality's embeddings, paths and captions, and the skips."""
    arrays: dict[str, np.ndarray] = {}
    skipped: list[tuple[str, str, str]] = []
    for modality in MODALITIES:
        kept, inputs = [], []
        for item in (i for i in items if i.modality == modality):
            if item.problem:
                skipped.append((item.problem, item.path, item.detail))
                continue
            try:
                source = item.caption if modality == "text" else os.path.join(root, item.path)
                inputs.append(embedder.inputs(modality, source))
            except READ_ERRORS as err:
                skipped.append((skip_reason(modality, err), item.path, str(err)))
                continue
            kept.append(item)
        if kept:
            reps = embedder.embed_arrays(stack_inputs(inputs), modality)
            arrays[f"{modality}_embeddings"] = reps.astype(dtype)
            arrays[f"{modality}_paths"] = np.array([i.path for i in kept], dtype=str)
            arrays[f"{modality}_captions"] = np.array([i.caption for i in kept], dtype=str)
    for k, column in enumerate(("reasons", "paths", "details")):
        arrays[f"skipped_{column}"] = np.array([s[k] for s in skipped], dtype=str)
    return arrays


def skip_reason(modality: str, err: Exception) -> str:
    """The counted reason an item could not be read (the data set builders' names where they exist)."""
    if isinstance(err, SilentAudioError):
        return "silent_sound"
    if isinstance(err, (UnknownWordsError, NoKnownWordError)):  # a run's or a bundle's vocabulary
        return "all_words_unknown"
    return "empty_caption" if modality == "text" else f"unreadable_{modality}"


def summarize(index_dir: str) -> dict[str, Any]:
    """{"items": {modality: count}, "skipped": {reason: count}}; writes skipped.tsv."""
    items: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    with open(os.path.join(index_dir, store.SKIPPED_FILE), "w") as out:
        for number in store.shard_numbers(index_dir):
            with np.load(store.shard_path(index_dir, number), allow_pickle=False) as shard:
                for modality in MODALITIES:
                    if f"{modality}_paths" in shard.files:
                        items[modality] += len(shard[f"{modality}_paths"])
                rows = zip(
                    shard["skipped_reasons"],
                    shard["skipped_paths"],
                    shard["skipped_details"],
                    strict=True,
                )
                for reason, path, detail in rows:
                    reasons[str(reason)] += 1
                    out.write(f"{reason}\t{path}\t{' '.join(str(detail).split())}\n")
    return {"items": dict(items), "skipped": dict(sorted(reasons.items()))}


def _chunks(items: Iterable[scan.Item], size: int) -> Iterator[list[scan.Item]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
