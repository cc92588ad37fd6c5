"""Rows of a built data set read by index: the only reader of stored rows.

Data sets are stored in ArrayRecord files, which TFDS reads by row index (`as_data_source`; a data set
on a remote filesystem such as gs:// is read by byte ranges, data_pipelines.array_record_files), so a
reader holds no row it was not asked for: the memory a training stream needs depends on its batch, not
on the size of the data set. Only the named features of a row are decoded (TFDS's numpy parser and
decoders restricted to them); row i is the split's i-th stored row, the order the builders wrote.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_parser, file_adapters

from data_pipelines import array_record_files, paths

# Rows per read: bounds the raw records held at once (64 rows of the paper config's shapes: about 44 MB).
_CHUNK = 64


class NotRandomAccessError(ValueError):
    """The data set was stored in a format that cannot be read by row index."""


class Records:
    """The rows of one split of a built data set, read by index.

    read(rows, names) -> {name: array [len(rows), ...]}; strings come back as bytes (dtype object).
    """

    def __init__(self, builder: tfds.core.DatasetBuilder, split: str):
        file_format = builder.info.file_format
        if file_format not in file_adapters.FileFormat.with_random_access():
            raise NotRandomAccessError(
                f"the data set at {builder.data_dir} is stored as {getattr(file_format, 'value', file_format)}, "
                "which cannot be read by row index: delete that folder and build it again with "
                "`python -m experiments.build_data` (data sets are now stored as array_record)"
            )
        self._features = builder.info.features
        self._serialized = self._features.get_serialized_info()
        if paths.is_remote(builder.data_dir):
            # The ArrayRecord library opens local files only: a bucket's files are read by byte ranges.
            self._source = array_record_files.ArrayRecordSource(
                builder.info.splits[split].file_instructions
            )
        else:
            self._source = builder.as_data_source(
                split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
            )
        self._parsers: dict[tuple[str, ...], example_parser.ExampleParserNp] = {}

    def __len__(self) -> int:
        return len(self._source)

    def _parser(self, names: tuple[str, ...]) -> example_parser.ExampleParserNp:
        if names not in self._parsers:
            unknown = [n for n in names if n not in self._serialized]
            if unknown:
                raise KeyError(f"the data set stores no feature {unknown[0]!r}")
            self._parsers[names] = example_parser.ExampleParserNp(
                {name: self._serialized[name] for name in names}
            )
        return self._parsers[names]

    def read(self, rows: Sequence[int] | np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named features of the given rows (any order, repeats allowed), stacked in that order."""
        names = tuple(names)
        parser = self._parser(names)
        indices = [int(i) for i in rows]
        # Arrays are filled in place: np.stack of the rows would allocate and copy each batch twice.
        out = {name: self._empty(name, len(indices)) for name in names}
        for start in range(0, len(indices), _CHUNK):
            chunk = self._source.__getitems__(indices[start : start + _CHUNK])
            for offset, raw in enumerate(chunk):
                parsed = parser.parse_example(raw)
                for name in names:
                    out[name][start + offset] = self._features[name].decode_example_np(parsed[name])
        return out

    def read_all(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named features of every row of the split, in stored order."""
        return self.read(np.arange(len(self)), names)

    def _empty(self, name: str, count: int) -> np.ndarray:
        feature = self._features[name]
        if isinstance(feature, tfds.features.Text):
            return np.empty(count, dtype=object)
        # float16 storage (compact rows) is read back as float32: what the step sees is one dtype.
        dtype = np.float32 if feature.np_dtype == np.float16 else feature.np_dtype
        return np.empty((count, *feature.shape), dtype)
