"""The arrays of a built data set kept beside its records, one table per feature, read by row with one
copy and nothing to decode.

A split's ArrayRecord files hold each row as one compressed record: a paper-shaped row costs 0.4-0.55 ms
to read through them before anything is done with it (benchmarks/NOTES.md), 19-26 cores to feed one
H200. So every build also writes, for each split,

    <data_dir>/arrays/<split>/<feature>.npy   [rows, *shape], the stored dtype (numpy's .npy format)
    <data_dir>/arrays/<split>/tables.json     the tables' shapes, dtypes and row counts, written last

for every feature that is not a string. A modality's arrays (image; sound; text and text_mask) hold only
the rows that have the modality, in stored order, so a missing modality costs no bytes; the others
(has_*, label, fine_label, teacher_probs) hold every row. Row r's position in a modality's table is the
number of rows before r that have the modality (from the has_* table, read once when a split is opened:
1 byte a row). A folder without tables.json (an interrupted write), or whose tables do not match the
data set's features, is not used: rows are then read from the records, as for a data set built before
the tables existed.

A read copies each run of consecutive rows with one positioned read (os.preadv) straight into the
caller's batch. Nothing is memory-mapped, so a process touches no page of a table it did not ask for
and its memory does not grow with the data set. A remote data set's tables are read by byte ranges.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from typing import Any, BinaryIO

import numpy as np
from absl import logging
from etils import epath

from alignment.streams import MODALITY_INPUTS
from data_pipelines import paths

TABLES_DIR = "arrays"
INDEX_FILE = "tables.json"
# Rows read from the records per write step (64 rows of the paper config's shapes: about 44 MB).
_WRITE_CHUNK = 64
# Range reads in flight per remote table read: an object store answers each after tens of milliseconds.
_PARALLEL_READS = 16
# Each modality's features and the boolean feature that says which rows hold it.
_MODALITY_FLAG = {name: f"has_{m}" for m, names in MODALITY_INPUTS.items() for name in names}


class TableError(ValueError):
    """A table file is shorter than its header says, or not a table this reader wrote."""


def split_dir(data_dir: paths.PathLike, split: str) -> epath.Path:
    return paths.as_path(data_dir) / TABLES_DIR / split


def tabled(features: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{name: (shape, stored dtype)} of the features kept in tables: every one that is not a string.

    features: a data set's tfds FeaturesDict (or any mapping of features with .shape and .np_dtype)."""
    return {
        name: (tuple(feature.shape), np.dtype(feature.np_dtype))
        for name, feature in features.items()
        if np.dtype(feature.np_dtype).kind not in "OSU"
    }


def _header(path: epath.Path, handle: BinaryIO) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, byte offset of row 0) from a .npy header."""
    try:
        if np.lib.format.read_magic(handle) != (1, 0):
            raise ValueError("not a version 1.0 header")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    except ValueError as err:
        raise TableError(f"{path} is not a .npy table: {err}") from None
    if fortran:
        raise TableError(f"{path} is stored in Fortran order: not a table this reader wrote")
    return tuple(shape), np.dtype(dtype), handle.tell()


class _Table:
    """One table file: its rows copied by position, locally with os.preadv, remotely by range reads."""

    def __init__(self, path: epath.Path, pool: futures.Executor | None):
        self.path = path
        with path.open("rb") as handle:
            shape, self.dtype, self.offset = _header(path, handle)
        self.rows, self.row_shape = shape[0], shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._pool = pool
        self._fd: int | None = None
        if pool is None:
            self._fd = os.open(os.fspath(path), os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)

    def read_into(self, positions: np.ndarray, out: np.ndarray) -> None:
        """out[i] = row positions[i] (ascending or not, repeats allowed); out: [len(positions), *row]
        C-contiguous, this table's dtype."""
        runs = list(_runs(positions))
        if self._fd is not None:
            for first, start, count in runs:
                self._pread(self._fd, out[first : first + count], start)
        elif self._pool is not None:
            list(self._pool.map(lambda run: self._range(out, *run), runs))

    def _pread(self, fd: int, target: np.ndarray, start: int) -> None:
        view = target.data.cast("B")
        offset = self.offset + start * self.row_bytes
        while view.nbytes:
            got = os.preadv(fd, [view], offset)
            if got <= 0:
                raise TableError(f"{self.path} ends before row {start}: write the tables again")
            view, offset = view[got:], offset + got

    def _range(self, out: np.ndarray, first: int, start: int, count: int) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self.offset + start * self.row_bytes)
            raw = handle.read(count * self.row_bytes)
        if len(raw) != count * self.row_bytes:
            raise TableError(f"{self.path} ends before row {start}: write the tables again")
        out[first : first + count] = np.frombuffer(raw, self.dtype).reshape(count, *self.row_shape)


def _runs(positions: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(first index, first position, length) of each run of consecutive positions[i + 1] == positions[i] + 1."""
    if len(positions) == 0:
        return
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(positions)]])
    for first, end in zip(starts.tolist(), ends.tolist(), strict=True):
        yield first, int(positions[first]), end - first


class SplitTables:
    """The tables of one split. read_into(name, rows, out) fills out[i] with row rows[i]'s array
    (zeros where the row lacks the feature's modality, as the records store it)."""

    def __init__(self, folder: epath.Path, index: Mapping[str, Any]):
        self.folder = folder
        pool = (
            futures.ThreadPoolExecutor(_PARALLEL_READS, thread_name_prefix="array-table")
            if paths.is_remote(folder)
            else None
        )
        self._tables = {name: _Table(folder / f"{name}.npy", pool) for name in index["tables"]}
        self.names = frozenset(self._tables)
        self._positions: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _positions_of(self, flag: str) -> np.ndarray:
        """int64 [N]: each row's position in the tables of the modality `flag` marks, -1 without it."""
        with self._lock:
            if flag not in self._positions:
                table = self._tables[flag]
                has = np.empty(table.rows, np.bool_)
                table.read_into(np.arange(table.rows), has)
                self._positions[flag] = np.where(has, np.cumsum(has) - 1, -1)
            return self._positions[flag]

    def read_into(self, name: str, rows: np.ndarray, out: np.ndarray) -> None:
        """rows: int [n] split rows; out: [n, *shape] in the stored dtype, C-contiguous."""
        table = self._tables[name]
        flag = _MODALITY_FLAG.get(name)
        if flag is None:
            table.read_into(rows, out)
            return
        positions = self._positions_of(flag)[rows]
        present = positions >= 0
        if present.all():
            table.read_into(positions, out)
            return
        out[~present] = 0
        held = np.empty((int(present.sum()), *table.row_shape), table.dtype)
        table.read_into(positions[present], held)
        out[present] = held


def is_written(data_dir: paths.PathLike, split: str) -> bool:
    """Whether the split's tables were written to the end (their index is the last file written)."""
    return (split_dir(data_dir, split) / INDEX_FILE).exists()


def open_split(
    data_dir: paths.PathLike, split: str, features: Mapping[str, Any], rows: int
) -> SplitTables | None:
    """The split's tables, or None when it has none (or none that match `features` and `rows`: the
    records are read instead, as for a data set built before the tables existed)."""
    if not is_written(data_dir, split):
        logging.log_first_n(
            logging.WARNING,
            "data: %s has no array tables (built before they existed): its arrays are read from its "
            "records, about five times slower; `python -m experiments.build_data` with its config "
            "adds them",
            1,
            data_dir,
        )
        return None
    folder = split_dir(data_dir, split)
    index = json.loads((folder / INDEX_FILE).read_text())
    expected = {
        name: {"shape": list(shape), "dtype": dtype.str}
        for name, (shape, dtype) in tabled(features).items()
    }
    stored = {n: {"shape": t["shape"], "dtype": t["dtype"]} for n, t in index["tables"].items()}
    if index.get("rows") != rows or stored != expected:
        logging.warning(
            "data: the tables in %s do not match the %s split's features (%d rows): reading its "
            "records instead; write them again with `python -m experiments.build_data`",
            folder,
            split,
            rows,
        )
        return None
    return SplitTables(folder, index)


def write_split(
    folder: epath.Path,
    features: Mapping[str, Any],
    has: Mapping[str, np.ndarray],
    read: Callable[[np.ndarray, Sequence[str]], dict[str, np.ndarray]],
) -> None:
    """Writes a split's tables into `folder`, tables.json last.

    has: {has_image, has_sound, has_text: bool [N]}, which rows hold each modality; read(rows, names):
    the named features of the split rows, in their stored dtypes (the records)."""
    shapes = tabled(features)
    rows = len(next(iter(has.values())))
    counts = {
        name: int(np.count_nonzero(has[_MODALITY_FLAG[name]])) if name in _MODALITY_FLAG else rows
        for name in shapes
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX_FILE).unlink(missing_ok=True)
    files = {name: (folder / f"{name}.npy").open("wb") for name in shapes}
    try:
        for name, (shape, dtype) in shapes.items():
            np.lib.format.write_array_header_1_0(
                files[name],
                {
                    "descr": np.lib.format.dtype_to_descr(dtype),
                    "fortran_order": False,
                    "shape": (counts[name], *shape),
                },
            )
        for start in range(0, rows, _WRITE_CHUNK):
            chunk = np.arange(start, min(rows, start + _WRITE_CHUNK))
            arrays = read(chunk, list(shapes))
            for name, values in arrays.items():
                if name in _MODALITY_FLAG:
                    values = values[has[_MODALITY_FLAG[name]][chunk]]
                files[name].write(np.ascontiguousarray(values, shapes[name][1]).tobytes())
    finally:
        for handle in files.values():
            handle.close()
    index = {
        "rows": rows,
        "tables": {
            name: {"shape": list(shape), "dtype": dtype.str, "rows": counts[name]}
            for name, (shape, dtype) in shapes.items()
        },
    }
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=1))
