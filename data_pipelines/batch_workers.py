"""Training batches made in worker processes and handed over in shared memory.

Reading a stored row and decoding it hold the GIL for most of their time, so threads of one process
use one core. Here each of `workers` processes makes every workers-th step's batch (make(step), a pure
function of the step, so which process makes it changes nothing) straight into one of its blocks of
shared memory (the first batch shows the layout; the rest are read into views of a block) and sends the
block's name and layout; the consumer takes the steps in order and
copies each batch out of its block. Each worker runs at most `ahead` steps before the consumer and
cycles through ahead + 2 blocks, so a block is written again only once the consumer has copied it out;
blocks are made once and kept, since first touching fresh memory pages costs more than the copy (on a
VM, a new block per batch tripled the hand-over time).

Processes are started with "spawn": the consumer is a JAX process with threads of its own, which fork
would copy mid-flight. Starting a worker costs an interpreter and the data stack's imports (a few
seconds, overlapping the first compilation of the step). A worker that raises sends its one-line error
(a row that fails to decode names the row), and one that dies is noticed within a second: the consumer
raises InputWorkerError either way, never waits forever.
"""

from __future__ import annotations

import _posixshmem  # SharedMemory's own POSIX calls (see _Attached)
import mmap
import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Iterator
from multiprocessing import shared_memory
from typing import Any

import numpy as np

# How often the consumer checks that the worker it waits on is alive (seconds).
_POLL_SECONDS = 1.0
# How long a stopped worker may take to finish its step and exit (seconds).
_STOP_SECONDS = 30.0
# Arrays start at multiples of this in a block (aligned loads for the copy out).
_ALIGN = 64

Layout = list[tuple[tuple[str, ...], str, tuple[int, ...], int]]


class InputWorkerError(RuntimeError):
    """A batch worker failed or died."""


def _flatten(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], np.ndarray]]:
    if isinstance(tree, dict):
        return [leaf for key in tree for leaf in _flatten(tree[key], (*prefix, key))]
    return [(prefix, np.asarray(tree))]


def _unflatten(leaves: list[tuple[tuple[str, ...], np.ndarray]]) -> Any:
    if len(leaves) == 1 and not leaves[0][0]:
        return leaves[0][1]
    tree: dict[str, Any] = {}
    for path, array in leaves:
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = array
    return tree


class _Blocks:
    """A worker's ring of shared-memory blocks, each grown (replaced by a larger one) when a batch does
    not fit."""

    def __init__(self, count: int):
        self.blocks: list[shared_memory.SharedMemory | None] = [None] * count
        self.next = 0
        # The first batch's layout and bytes: later batches are made straight into a block.
        self.layout: Layout | None = None
        self.size = 0

    def make_into(self, make: Callable[..., Any], step: int) -> tuple[str, Layout]:
        """make(step) into the next block; (its name, layout). Once the first batch has shown the
        layout, make(step, out=views of the block) fills the block itself, saving a copy a batch."""
        if self.layout is None:
            name, self.layout = self.write(make(step))
            self.size = max((offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
                             for _, dtype, shape, offset in self.layout), default=0)  # fmt: skip
            return name, self.layout
        name, views = self.views(self.layout, self.size)
        made = make(step, views)
        given = dict(_flatten(views))
        if any(given.get(path) is not array for path, array in _flatten(made)):
            raise RuntimeError(f"step {step}'s batch was not made into the arrays it was given")
        return name, self.layout

    def write(self, batch: Any) -> tuple[str, Layout]:
        """Copies a batch (nested dicts of numeric arrays) into the next block; (its name, layout)."""
        leaves = _flatten(batch)
        layout: Layout = []
        size = 0
        for path, array in leaves:
            if array.dtype == object:
                raise TypeError(f"batch entry {'/'.join(path)} holds Python objects: not sharable")
            size = -(-size // _ALIGN) * _ALIGN
            layout.append((path, array.dtype.str, array.shape, size))
            size += array.nbytes
        name, arrays = self.views(layout, size)
        for (_, array), (_, view) in zip(leaves, _flatten(arrays), strict=True):
            view[...] = array
        return name, layout

    def views(self, layout: Layout, size: int) -> tuple[str, Any]:
        """The next block (made, or grown to `size` bytes), and arrays laid out in it by `layout`:
        (its name, the batch tree of views) for a batch to be made straight into."""
        index = self.next
        self.next = (index + 1) % len(self.blocks)
        block = self.blocks[index]
        if block is None or block.size < size:
            if block is not None:
                _release(block)
            block = shared_memory.SharedMemory(create=True, size=max(size, 1))
            self.blocks[index] = block
        return block.name, _unflatten(
            [
                (path, np.ndarray(shape, dtype, block.buf, offset))
                for path, dtype, shape, offset in layout
            ]
        )

    def release(self) -> None:
        for block in self.blocks:
            if block is not None:
                _release(block)


def _release(block: shared_memory.SharedMemory) -> None:
    """Unmaps and unlinks one of this worker's blocks."""
    block.close()
    block.unlink()


class _Attached:
    """The consumer's view of the workers' blocks: each mapped once, unmapped at the end.

    Only the worker that made a block registers it with the resource tracker and unlinks it: messages
    to the tracker from two processes can arrive in either order, and a block unregistered before it
    was registered would be reported as leaked. The consumer therefore maps blocks directly, as
    SharedMemory does without its tracker calls; a worker that is killed leaves its blocks to the
    tracker, which frees them when the job ends.
    """

    def __init__(self) -> None:
        self.maps: dict[str, mmap.mmap] = {}

    def read(self, name: str, layout: Layout) -> Any:
        """The batch in block `name`, copied out (the worker writes the block again later)."""
        if name not in self.maps:
            fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
            try:
                self.maps[name] = mmap.mmap(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
        buf = self.maps[name]
        return _unflatten(
            [
                (path, np.ndarray(shape, dtype, buf, offset).copy())
                for path, dtype, shape, offset in layout
            ]
        )

    def release(self) -> None:
        for mapped in self.maps.values():
            mapped.close()
        self.maps.clear()


def _work(
    make: Callable[..., Any], first: int, stride: int, ahead: int, out: Any, stop: Any
) -> None:
    """A worker's loop: make(first), make(first + stride), ... into shared memory, until stopped or
    until the consumer's process is gone (killed, it cannot stop its workers)."""
    consumer = multiprocessing.parent_process()

    def wanted() -> bool:
        return not stop.is_set() and (consumer is None or consumer.is_alive())

    blocks = _Blocks(ahead + 2)
    step = first
    try:
        while _make_one(make, step, out, wanted, blocks):
            step += stride
    finally:
        blocks.release()


def _make_one(
    make: Callable[..., Any],
    step: int,
    out: Any,
    wanted: Callable[[], bool],
    blocks: _Blocks,
) -> bool:
    """Makes one step's batch and hands it over; False when the worker should end."""
    if not wanted():
        return False
    try:
        message = ("batch", step, *blocks.make_into(make, step))
    except Exception as err:  # any failure is reported, then the worker ends
        text = " ".join(str(err).split()) or type(err).__name__
        out.put(("error", step, f"{type(err).__name__}: {text}"))
        return False
    while True:
        try:
            out.put(message, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            if not wanted():
                return False


def batches(
    make: Callable[..., Any], start_step: int, workers: int, ahead: int = 2
) -> Iterator[Any]:
    """make(start_step), make(start_step + 1), ... made by `workers` processes, in order.

    make must be picklable (a module-level class or function) and a pure function of the step, and
    make(step, out) must fill `out` (the previous batch's tree of arrays, views into shared memory) with
    the batch and return it: every step's batch has the same layout.
    """
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    outs = [context.Queue(maxsize=max(1, ahead)) for _ in range(workers)]
    processes = [
        context.Process(
            target=_work,
            args=(make, start_step + w, workers, max(1, ahead), outs[w], stop),
            name=f"input-worker-{w}",
            daemon=True,
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    attached = _Attached()
    try:
        step = start_step
        while True:
            w = (step - start_step) % workers
            yield attached.read(*_receive(outs[w], processes[w], step))
            step += 1
    finally:
        stop.set()
        for process, out in zip(processes, outs, strict=True):
            _stop(process, out)
        attached.release()


def _receive(out: Any, process: Any, step: int) -> tuple[str, Layout]:
    """(block name, layout) of the worker's batch of `step`."""
    while True:
        try:
            kind, got, *rest = out.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if not process.is_alive():
                raise InputWorkerError(
                    f"input worker {process.name} (pid {process.pid}) died with exit code "
                    f"{process.exitcode} while making step {step}"
                ) from None
            continue
        if kind == "error":
            raise InputWorkerError(f"input worker {process.name}, step {got}: {rest[0]}")
        if got != step:
            raise InputWorkerError(f"input worker {process.name} sent step {got}, expected {step}")
        return rest[0], rest[1]


def _stop(process: Any, out: Any) -> None:
    """Waits for a stopped worker to end (it frees its blocks; reading its queue lets it exit), and
    ends it by force after _STOP_SECONDS."""
    deadline = time.monotonic() + _STOP_SECONDS
    while process.is_alive() and time.monotonic() < deadline:
        _drain(out)
        process.join(timeout=0.1)
    if process.is_alive():
        process.terminate()
        process.join()
    else:
        _drain(out)
    out.close()


def _drain(out: Any) -> None:
    """Empties a stopped worker's queue (its blocks are its own to free)."""
    while True:
        try:
            out.get_nowait()
        except (queue.Empty, EOFError, OSError):
            return
