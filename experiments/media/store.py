"""The index folder: what `python -m experiments.index` writes and experiments.media.search reads.

    DIR/index.json          the run that made it (Embedder.settings: workdir, step, layer, dim,
                            config_hash, front_ends), source, dtype, shard_size; once complete, the
                            counts: items per modality, skips per reason, shards
    DIR/shards/NNNNN.npz    shard n: items [n * shard_size, (n + 1) * shard_size) of the scan, for each
                            modality m present: "{m}_embeddings" [N_m, D] float32 (or float16),
                            "{m}_paths" str [N_m], "{m}_captions" str [N_m]; and "skipped_paths",
                            "skipped_reasons", "skipped_details" str [S] of the shard's skipped items
    DIR/skipped.tsv         reason, path, detail of every skipped item (one line each)

A shard is written to a temporary name and renamed into place, so a shard file exists only whole: the
shard files present are the done-list a rerun skips. Read with np.load(path, allow_pickle=False).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

META_FILE = "index.json"
SHARDS_DIR = "shards"
SKIPPED_FILE = "skipped.tsv"
DTYPES = ("float32", "float16")
# Written at the start and compared on a rerun: a resumed index must come from the same run and settings.
RESUME_KEYS = ("run", "source", "dtype", "shard_size")


def shard_path(index_dir: str, number: int) -> str:
    return os.path.join(index_dir, SHARDS_DIR, f"{number:05d}.npz")


def shard_numbers(index_dir: str) -> list[int]:
    """The numbers of the shards written so far, in order."""
    folder = os.path.join(index_dir, SHARDS_DIR)
    if not os.path.isdir(folder):
        return []
    names = (n for n in os.listdir(folder) if n.endswith(".npz") and n[:-4].isdigit())
    return sorted(int(n[:-4]) for n in names)


def write_shard(index_dir: str, number: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes shard `number` atomically (a temporary file renamed into place)."""
    path = shard_path(index_dir, number)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_shard(index_dir: str, number: int) -> dict[str, np.ndarray]:
    with np.load(shard_path(index_dir, number), allow_pickle=False) as saved:
        return {name: saved[name] for name in saved.files}


def iter_shards(index_dir: str) -> Iterator[dict[str, np.ndarray]]:
    """Every shard's arrays, one shard at a time."""
    for number in shard_numbers(index_dir):
        yield read_shard(index_dir, number)


def read_meta(index_dir: str) -> dict[str, Any] | None:
    path = os.path.join(index_dir, META_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_meta(index_dir: str, meta: Mapping[str, Any]) -> None:
    """Writes index.json atomically."""
    os.makedirs(index_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=index_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(index_dir, META_FILE))


def check_resumable(index_dir: str, meta: Mapping[str, Any]) -> None:
    """ValueError when DIR holds shards of another run, source or settings (they would mix)."""
    old = read_meta(index_dir)
    if old is None:
        if shard_numbers(index_dir):
            raise ValueError(
                f"{index_dir} holds shards but no {META_FILE}: use a new --index folder"
            )
        return
    for key in RESUME_KEYS:
        if old.get(key) != meta.get(key):
            raise ValueError(
                f"{index_dir} was indexed with another {key} ({old.get(key)!r}, now "
                f"{meta.get(key)!r}): use a new --index folder"
            )
