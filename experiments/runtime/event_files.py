"""TensorBoard event files on gs://, written through epath like every other file of a run.

tensorboardX writes local files itself, but its own gs:// writer uploads once more when it is garbage
collected, after close: at the exit of every run, retried for minutes if the store is unreachable by
then. This writer keeps the event file in memory and rewrites the object whole on each flush (object
stores have no append; the file grows by a few hundred bytes per log step).
"""

from __future__ import annotations

import io

from tensorboardX import record_writer

from data_pipelines import paths

SCHEMES = ("gs",)


class _RemoteEventFile:
    def __init__(self, path: str):
        self._path = paths.as_path(path)
        self._buffer = io.BytesIO()

    def write(self, data: bytes) -> None:
        self._buffer.write(data)

    def flush(self) -> None:
        self._path.write_bytes(self._buffer.getvalue())

    def close(self) -> None:
        self.flush()


class _RemoteEventFiles:
    """tensorboardX's writer factory interface: open(path) -> file, directory_check(path)."""

    def open(self, path: str) -> _RemoteEventFile:
        return _RemoteEventFile(path)

    def directory_check(self, path: str) -> None:
        paths.as_path(path).mkdir(parents=True, exist_ok=True)


def register() -> None:
    """Sends tensorboardX's event files under SCHEMES through epath (calling it again changes nothing)."""
    for scheme in SCHEMES:
        record_writer.register_writer_factory(scheme, _RemoteEventFiles())
