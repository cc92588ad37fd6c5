"""Rows of a built data set read by index: the only reader of stored rows.

Data sets are stored in ArrayRecord files, which TFDS reads by row index (`as_data_source`; a data set
on a remote filesystem such as gs:// is read by byte ranges, data_pipelines.array_record_files), so a
reader holds no row it was not asked for: the memory a training stream needs depends on its batch, not
on the size of the data set. Only the named features of a row are decoded, straight from the record's
bytes (data_pipelines.example_bytes: no protobuf parse, arrays copied once, into the batch); row i is
the split's i-th stored row, the order the builders wrote.

Every feature that is not a string is read from the split's array tables instead when the data set has
them (data_pipelines.array_tables, written by every build): one copy from the file into the batch, no
decompression, at a fifth of a record's cost. Strings (id, caption) always come from the records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters

from data_pipelines import array_record_files, array_tables, example_bytes, paths, proto_wire

# Rows per read: bounds the raw records held at once (64 rows of the paper config's shapes: about 44 MB).
_CHUNK = 64


class NotRandomAccessError(ValueError):
    """The data set was stored in a format that cannot be read by row index."""


class Records:
    """The rows of one split of a built data set, read by index.

    read(rows, names) -> {name: array [len(rows), ...]}; strings come back as bytes (dtype object).
    tables=False reads every feature from the records, even where the split has array tables.
    """

    def __init__(self, builder: tfds.core.DatasetBuilder, split: str, tables: bool = True):
        file_format = builder.info.file_format
        if file_format not in file_adapters.FileFormat.with_random_access():
            raise NotRandomAccessError(
                f"the data set at {builder.data_dir} is stored as {getattr(file_format, 'value', file_format)}, "
                "which cannot be read by row index: delete that folder and build it again with "
                "`python -m experiments.build_data` (data sets are now stored as array_record)"
            )
        self._features = builder.info.features
        self._serialized = self._features.get_serialized_info()
        self._data_dir = builder.data_dir
        if paths.is_remote(builder.data_dir):
            # The ArrayRecord library opens local files only: a bucket's files are read by byte ranges.
            self._source = array_record_files.ArrayRecordSource(
                builder.info.splits[split].file_instructions
            )
        else:
            self._source = builder.as_data_source(
                split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
            )
        self._split = split
        self._tables = (
            array_tables.open_split(builder.data_dir, split, self._features, len(self._source))
            if tables
            else None
        )

    @property
    def has_tables(self) -> bool:
        """Whether arrays are read from the split's tables (array_tables) rather than its records."""
        return self._tables is not None

    def __len__(self) -> int:
        return len(self._source)

    def _check(self, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in self._serialized]
        if unknown:
            raise KeyError(f"the data set stores no feature {unknown[0]!r}")

    def _decode(
        self, name: str, raw: bytes, lists: dict[str, tuple[int, int, int]]
    ) -> np.ndarray | bytes | int:
        """One feature of one row from its list message in the record (example_bytes.feature_lists)."""
        feature = self._features[name]
        kind, start, end = lists[name]
        if kind == example_bytes.BYTES_LIST:
            value = example_bytes.bytes_values(raw, start, end)[0]
            if isinstance(feature, tfds.features.Text):
                return bytes(value)
            # An array stored as one byte string (encoding=bytes): a view of the record.
            array = np.frombuffer(value, feature.np_dtype)
            if array.size != int(np.prod(feature.shape)):
                raise example_bytes.MalformedRowError(
                    f"{name} holds {array.nbytes} bytes, expected {feature.shape} {feature.np_dtype}"
                )
            return array.reshape(feature.shape)
        values = example_bytes.number_values(raw, kind, start, end)
        if len(values) != int(np.prod(feature.shape)):
            raise example_bytes.MalformedRowError(
                f"{name} holds {len(values)} values, expected shape {feature.shape}"
            )
        return values.reshape(feature.shape) if feature.shape else values[0]

    def read(
        self,
        rows: Sequence[int] | np.ndarray,
        names: Sequence[str],
        stored_dtype: bool = False,
        out: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The named features of the given rows (any order, repeats allowed), stacked in that order.

        Arrays stored as float16 come back as float32, or with `stored_dtype` as float16: widening on
        the host costs more than reading the row (about 1 ms for a paper spectrogram), so training
        batches cross to the device as stored and the step widens them there (exactly). out: arrays
        of the right shapes and dtypes to read into (shared memory, data_pipelines.batch_workers)
        instead of new ones; they are returned.
        """
        names = tuple(names)
        self._check(names)
        indices = [int(i) for i in rows]
        # Arrays are filled in place: np.stack of the rows would allocate and copy each batch twice.
        out = {
            name: self._empty(name, len(indices), stored_dtype)
            if out is None
            else self._given(name, len(indices), stored_dtype, out[name])
            for name in names
        }
        tabled = [n for n in names if self._tables is not None and n in self._tables.names]
        if self._tables is not None and tabled:
            self._read_tables(self._tables, np.asarray(indices, np.int64), tabled, out)
        self._read_records(indices, [n for n in names if n not in tabled], out)
        return out

    def _read_tables(
        self,
        tables: array_tables.SplitTables,
        rows: np.ndarray,
        names: list[str],
        out: dict[str, np.ndarray],
    ) -> None:
        bad = rows[(rows < 0) | (rows >= len(self))]
        if len(bad):
            raise IndexError(f"row {bad[0]} of the {self._split} split of {len(self)} rows")
        for name in names:
            stored = self._features[name].np_dtype
            if out[name].dtype == stored:
                tables.read_into(name, rows, out[name])
            else:  # widened on the host (float16 -> float32)
                held = np.empty(out[name].shape, stored)
                tables.read_into(name, rows, held)
                out[name][:] = held

    def _read_records(
        self, indices: list[int], names: list[str], out: dict[str, np.ndarray]
    ) -> None:
        if not names:
            return
        wanted = frozenset(names)
        for start in range(0, len(indices), _CHUNK):
            chunk = self._source.__getitems__(indices[start : start + _CHUNK])
            for offset, raw in enumerate(chunk):
                row = indices[start + offset]
                try:
                    lists = example_bytes.feature_lists(raw, wanted)
                    missing = wanted - lists.keys()
                    if missing:
                        raise example_bytes.MalformedRowError(f"no feature {sorted(missing)[0]!r}")
                    for name in names:
                        out[name][start + offset] = self._decode(name, raw, lists)
                except proto_wire.WireFormatError as err:  # MalformedRowError included
                    raise example_bytes.MalformedRowError(
                        f"row {row} of the {self._split} split of {self._data_dir}: {err}"
                    ) from None

    def read_all(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named features of every row of the split, in stored order."""
        return self.read(np.arange(len(self)), names)

    def _given(self, name: str, count: int, stored_dtype: bool, array: np.ndarray) -> np.ndarray:
        """`array` if it can take the feature's rows as read() returns them, else a one-line error."""
        like = self._empty(name, 0, stored_dtype)
        if array.shape != (count, *like.shape[1:]) or array.dtype != like.dtype:
            raise ValueError(
                f"{name}: cannot read {count} rows of {like.shape[1:]} {like.dtype} into an array of "
                f"{array.shape} {array.dtype}"
            )
        return array

    def _empty(self, name: str, count: int, stored_dtype: bool) -> np.ndarray:
        feature = self._features[name]
        if isinstance(feature, tfds.features.Text):
            return np.empty(count, dtype=object)
        widen = feature.np_dtype == np.float16 and not stored_dtype
        dtype = np.float32 if widen else feature.np_dtype
        return np.empty((count, *feature.shape), dtype)
