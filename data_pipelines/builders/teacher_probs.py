"""Teacher probabilities added to a built data set later, as a parallel file keyed by example id.

A data set is built once, before any teacher exists; the teacher's class probabilities for its images are
written afterwards to <dataset_dir>/teacher_probs/<split>.npz (arrays "ids" and "probs", no pickle) and
joined by id when the data set is read (input_pipeline). Rewriting the file replaces the teacher; the
stored rows are never touched.
"""

from __future__ import annotations

import io
import os

import numpy as np

from data_pipelines import paths

TEACHER_DIR = "teacher_probs"


def teacher_probs_path(dataset_dir: str, split: str) -> str:
    """<dataset_dir>/teacher_probs/<split>.npz (dataset_dir local or a URI)."""
    return os.fspath(paths.as_path(dataset_dir) / TEACHER_DIR / f"{split}.npz")


def has_teacher_probs(dataset_dir: str, split: str) -> bool:
    return paths.as_path(teacher_probs_path(dataset_dir, split)).is_file()


def save_teacher_probs(dataset_dir: str, split: str, ids: np.ndarray, probs: np.ndarray) -> str:
    """Writes ids [N] (str) and probs float32 [N, C] (rows are distributions) atomically; returns the path."""
    ids = np.asarray([i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in ids])
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or probs.shape[0] != ids.shape[0]:
        raise ValueError(
            f"probs must be [N, C] with N = len(ids) = {ids.shape[0]}, got {probs.shape}"
        )
    if len(set(ids.tolist())) != ids.shape[0]:
        raise ValueError("ids must be unique")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("probs must be finite and non-negative")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("each row of probs must sum to 1")
    path = paths.as_path(teacher_probs_path(dataset_dir, split))
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, ids=ids, probs=probs)
    # Written whole, then renamed: a reader never sees half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)
    return os.fspath(path)


def load_teacher_probs(dataset_dir: str, split: str) -> dict[str, np.ndarray] | None:
    """{id: float32 [C]} for a split, or None when no teacher probabilities were saved."""
    path = paths.as_path(teacher_probs_path(dataset_dir, split))
    if not path.is_file():
        return None
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
        return dict(zip(data["ids"].tolist(), data["probs"], strict=True))


def lookup_teacher_probs(table: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """float32 [N, C] for example ids [N] (str or bytes); KeyError naming the first id without one."""
    keys = [i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in ids]
    missing = [k for k in keys if k not in table]
    if missing:
        raise KeyError(f"no teacher probabilities for {len(missing)} ids, e.g. {missing[0]!r}")
    return np.stack([table[k] for k in keys]).astype(np.float32)
