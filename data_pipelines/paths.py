"""Paths that may be local or remote (gs://bucket/..., s3://...): the one place a user's string becomes
an etils.epath.Path, and the few helpers for readers that need a local file.

A local path is made absolute (orbax, among others, needs that); a URI is kept as given, never passed
through os.path (which would make gs://bucket/x a local folder named "gs:").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from etils import epath

PathLike = str | os.PathLike[str]


def is_remote(path: PathLike) -> bool:
    """True for a URI (scheme://...), False for a local path."""
    return "://" in os.fspath(path)


def as_path(path: PathLike) -> epath.Path:
    """`path` as an epath.Path: a URI as given, a local path made absolute."""
    text = os.fspath(path)
    return epath.Path(text if is_remote(text) else os.path.abspath(text))


def require_local(path: PathLike, what: str) -> None:
    """Raises a one-line ValueError when `path` is a URI: for inputs read by tools that open local files
    only (ffmpeg, librosa, PIL over a folder walk)."""
    if is_remote(path):
        raise ValueError(
            f"{what}={os.fspath(path)!r}: this folder is read with local tools (ffmpeg, librosa), so "
            "it must be on this machine; copy it here (the built data set, data_dir, may be remote)"
        )


@contextlib.contextmanager
def local_copy(path: PathLike) -> Iterator[str]:
    """A local file holding `path`'s bytes while the block runs: `path` itself when local, else a
    temporary copy (for readers, such as gensim's, that open local files only)."""
    if not is_remote(path):
        yield os.fspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="shr-remote-") as folder:
        local = os.path.join(folder, as_path(path).name)
        copy_file(path, local)
        yield local


@contextlib.contextmanager
def local_output(path: PathLike) -> Iterator[str]:
    """A local file name to write `path` through: `path` itself when local, else a temporary file whose
    bytes are copied to `path` when the block ends without error (for writers of local files only)."""
    if not is_remote(path):
        yield os.fspath(path)
        return
    with tempfile.TemporaryDirectory(prefix="shr-remote-") as folder:
        local = os.path.join(folder, as_path(path).name)
        yield local
        copy_file(local, path)


def copy_file(source: PathLike, target: PathLike) -> None:
    """Copies one file between any two places (local or URI), streaming, making target's folder."""
    destination = as_path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with as_path(source).open("rb") as src, destination.open("wb") as dst:
        shutil.copyfileobj(src, dst, length=16 << 20)
