"""One training process per workdir: a second one refuses to start instead of corrupting checkpoints.

A local workdir is locked with flock on <workdir>/.lock, which vanishes with its process, so a SIGKILLed
run never leaves a stale lock behind. An object store (gs://...) has no locks: there <workdir>/.lock is an
object naming its holder (host, pid, a token) and when the holder last renewed it; the holder renews it
from a background thread, and a second process refuses while the record is fresh. A holder killed without
cleanup is taken as gone once its record is STALE_S old, or at once by a process of the same host that
finds its pid gone. Taking the object is check-then-write (object stores have no compare-and-swap through
epath), so this stops a second launch, not two launches within the same second.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from absl import logging
from etils import epath

from data_pipelines import paths

LOCK_FILE = ".lock"
RENEW_S = 60.0
STALE_S = 300.0


class WorkdirBusyError(RuntimeError):
    """Another live process holds the workdir."""


def _busy(workdir: str, holder: str, advice: str = "") -> WorkdirBusyError:
    return WorkdirBusyError(
        f"{workdir} is in use by training process {holder}; wait for it to finish or choose another "
        f"--workdir{advice}"
    )


class FileLock:
    """An exclusive advisory flock on `<workdir>/.lock` (a local workdir)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.path = os.path.join(workdir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise _busy(self.workdir, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class ObjectLock:
    """A renewed lock record at `<workdir>/.lock` (an object store, or any epath folder)."""

    def __init__(self, workdir: str, renew_s: float = RENEW_S, stale_s: float = STALE_S):
        self.workdir = workdir
        self.path: epath.Path = paths.as_path(workdir) / LOCK_FILE
        self.renew_s, self.stale_s = renew_s, stale_s
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _write(self) -> None:
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": self._token,
            "renewed": time.time(),
        }
        # Written aside and moved into place: a reader never sees a half-written record (a local
        # folder's write truncates first; an object store's write is whole anyway).
        staged = self.path.with_name(f"{self.path.name}.{self._token}")
        staged.write_text(json.dumps(record))
        staged.replace(self.path)

    def _gone(self, holder: dict[str, Any]) -> bool:
        """Whether the holder is known dead: renewed too long ago, or a pid of this host that is gone."""
        if time.time() - float(holder.get("renewed", 0)) > self.stale_s:
            return True
        if holder.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError):
            pass
        return False

    def _refuse(self, holder: dict[str, Any]) -> WorkdirBusyError:
        age = time.time() - float(holder.get("renewed", 0))
        return _busy(
            self.workdir,
            f"{holder.get('pid')} on {holder.get('host')} (lock renewed {age:.0f} s ago)",
            f"; if that process is gone, delete {self.path} or wait {max(self.stale_s - age, 0):.0f} s",
        )

    def acquire(self) -> None:
        holder = self._read()
        if holder is not None and not self._gone(holder):
            raise self._refuse(holder)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        # Of two processes that wrote at once, the one whose record stayed holds the workdir.
        holder = self._read()
        if holder is None or holder.get("token") != self._token:
            raise self._refuse(holder or {})
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="workdir-lock", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            holder = self._read()
            if holder is None or holder.get("token") != self._token:
                logging.warning("workdir lock: %s was taken by another process", self.path)
                return
            self._write()

    def release(self) -> None:
        if self._renewer is None:
            return
        self._stop.set()
        self._renewer.join()
        self._renewer = None
        holder = self._read()
        if holder is not None and holder.get("token") == self._token:
            self.path.unlink(missing_ok=True)


class WorkdirLock:
    """The workdir's lock for the whole run: FileLock on a local workdir, ObjectLock on a URI."""

    def __init__(self, workdir: str):
        remote = paths.is_remote(workdir)
        self.lock: FileLock | ObjectLock = ObjectLock(workdir) if remote else FileLock(workdir)

    def acquire(self) -> WorkdirLock:
        if isinstance(self.lock, ObjectLock):
            logging.info(
                "workdir lock: lock object %s, renewed every %.0f s, taken as stale after %.0f s",
                self.lock.path,
                self.lock.renew_s,
                self.lock.stale_s,
            )
        else:
            logging.info("workdir lock: flock on %s", self.lock.path)
        self.lock.acquire()
        return self

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
