"""Teacher probabilities added to a built data set later, as a parallel array in the split's row order.

A data set is built once, before any teacher exists; the teacher's class probabilities for its rows are
written afterwards to <dataset_dir>/teacher_probs/<split>.npy (float32 [N, C], row i the split's i-th
stored row, no pickle) and read by row index (input_pipeline). The writer takes the rows in chunks, so
its memory does not grow with the split, and publishes the file only once every row is in: a half-written
file is never read as complete. Rewriting the file replaces the teacher; the stored rows are never touched.
"""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np

from data_pipelines import paths

TEACHER_DIR = "teacher_probs"
_DTYPE = np.dtype("<f4")


def teacher_probs_path(dataset_dir: str, split: str) -> str:
    """<dataset_dir>/teacher_probs/<split>.npy (dataset_dir local or a URI)."""
    return os.fspath(paths.as_path(dataset_dir) / TEACHER_DIR / f"{split}.npy")


def has_teacher_probs(dataset_dir: str, split: str) -> bool:
    return paths.as_path(teacher_probs_path(dataset_dir, split)).is_file()


def check_distributions(probs: np.ndarray) -> None:
    """ValueError unless probs is [n, C] of finite, non-negative rows that sum to 1."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, C], got shape {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("probs must be finite and non-negative")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("each row of probs must sum to 1")


class TeacherProbsWriter:
    """Writes a split's probabilities chunk by chunk, in row order; `close()` publishes the file.

    The rows go to a local temporary file (an .npy header, then each chunk's bytes), renamed (local) or
    copied (a URI) to teacher_probs_path only when all `num_rows` rows are in. Used as a context manager,
    an exception discards the partial file and leaves any earlier complete one in place.
    """

    def __init__(self, dataset_dir: str, split: str, num_rows: int, num_classes: int):
        self.path = paths.as_path(teacher_probs_path(dataset_dir, split))
        self.num_rows, self.num_classes, self.written = num_rows, num_classes, 0
        local = not paths.is_remote(dataset_dir)
        if local:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.fspath(self.path.parent) if local else None
        handle, self._partial = tempfile.mkstemp(suffix=".npy.partial", dir=folder)
        self._file = os.fdopen(handle, "wb")
        header = {"descr": _DTYPE.str, "fortran_order": False, "shape": (num_rows, num_classes)}
        np.lib.format.write_array_header_1_0(self._file, header)

    def write(self, probs: np.ndarray) -> None:
        """Appends the next rows: float [n, C] distributions."""
        probs = np.asarray(probs, dtype=_DTYPE)
        check_distributions(probs)
        if probs.shape[1] != self.num_classes or self.written + len(probs) > self.num_rows:
            raise ValueError(
                f"{self.written} of {self.num_rows} rows of {self.num_classes} classes written; "
                f"cannot append {probs.shape}"
            )
        self._file.write(probs.tobytes())
        self.written += len(probs)

    def close(self) -> str:
        """Publishes the file once every row is written; returns its path."""
        self._file.close()
        if self.written != self.num_rows:
            self.discard()
            raise ValueError(
                f"only {self.written} of the split's {self.num_rows} rows were written"
            )
        if paths.is_remote(os.fspath(self.path)):
            paths.copy_file(self._partial, self.path)
            os.remove(self._partial)
        else:
            os.replace(self._partial, self.path)
        return os.fspath(self.path)

    def discard(self) -> None:
        self._file.close()
        if os.path.exists(self._partial):
            os.remove(self._partial)

    def __enter__(self) -> TeacherProbsWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            self.discard()


def save_teacher_probs(dataset_dir: str, split: str, probs: np.ndarray) -> str:
    """Writes a whole split's probs float32 [N, C] (row i for the split's row i); returns the path."""
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"probs must be [N, C], got shape {probs.shape}")
    with TeacherProbsWriter(dataset_dir, split, *probs.shape) as writer:
        writer.write(probs)
        return writer.close()


def load_teacher_probs(dataset_dir: str, split: str) -> np.ndarray | None:
    """float32 [N, C] of a split, or None when no teacher probabilities were saved. A local file is
    memory-mapped (rows are read from disk as they are indexed); a remote one is read whole."""
    path = paths.as_path(teacher_probs_path(dataset_dir, split))
    if not path.is_file():
        return None
    if paths.is_remote(dataset_dir):
        return np.load(io.BytesIO(path.read_bytes()), allow_pickle=False)
    return np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
