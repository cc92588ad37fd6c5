"""Where each feature of a stored row lies in its bytes: a serialized tf.Example read without a parse.

A stored row is a tf.Example (TFDS's record format) whose arrays are single byte strings
(`tfds.features.Tensor(..., encoding=bytes)`, builders/features.py). A protobuf parse copies every
value into new objects before numpy sees them (about 0.5-0.8 ms for a 270 kB paper row); scanning the
dozen field headers instead and reading each array as a numpy view of the record costs microseconds, and
the only copy left is the one into the batch.

Protobuf wire format of the messages involved (tensorflow/core/example/{example,feature}.proto):
  Example {Features features = 1}; Features {map<string, Feature> feature = 1}: entries {key = 1, value = 2};
  Feature {oneof: BytesList bytes_list = 1, FloatList float_list = 2, Int64List int64_list = 3};
  each list {repeated value = 1}, numbers packed or not (both are valid encodings).
"""

from __future__ import annotations

import numpy as np

from data_pipelines import proto_wire
from data_pipelines.proto_wire import LEN, VARINT

BYTES_LIST, FLOAT_LIST, INT64_LIST = 1, 2, 3


class MalformedRowError(proto_wire.WireFormatError):
    """A stored row that is not a well-formed tf.Example."""


def feature_lists(buf: bytes, names: frozenset[str]) -> dict[str, tuple[int, int, int]]:
    """{name: (list kind, start, end)} of the named features: buf[start:end] is the feature's
    BytesList, FloatList or Int64List message (kind BYTES_LIST, FLOAT_LIST or INT64_LIST)."""
    found: dict[str, tuple[int, int, int]] = {}
    try:
        for number, wire, start, end in proto_wire.fields(buf, 0, len(buf)):
            if number != 1 or wire != LEN:
                continue
            for entry_number, entry_wire, entry_start, entry_end in proto_wire.fields(
                buf, start, end
            ):
                if entry_number != 1 or entry_wire != LEN:
                    continue
                key, value = None, None
                for part, part_wire, part_start, part_end in proto_wire.fields(
                    buf, entry_start, entry_end
                ):
                    if part == 1 and part_wire == LEN:
                        key = bytes(buf[part_start:part_end]).decode("utf-8")
                    elif part == 2 and part_wire == LEN:
                        value = (part_start, part_end)
                if key in names and value is not None:
                    for kind, list_wire, list_start, list_end in proto_wire.fields(buf, *value):
                        if list_wire == LEN:
                            found[key] = (kind, list_start, list_end)
    except (IndexError, proto_wire.WireFormatError) as err:
        raise MalformedRowError(str(err) or "the row ends inside a field") from None
    return found


def bytes_values(buf: bytes, start: int, end: int) -> list[memoryview]:
    """The values of the BytesList message buf[start:end], as memoryviews of `buf` (no copy)."""
    view = memoryview(buf)
    return [view[a:b] for number, _, a, b in proto_wire.fields(buf, start, end) if number == 1]


def number_values(buf: bytes, kind: int, start: int, end: int) -> np.ndarray:
    """The values of the FloatList (float32 [n]) or Int64List (int64 [n]) message buf[start:end]."""
    if kind == FLOAT_LIST:
        view = memoryview(buf)
        parts = [
            np.frombuffer(view[a:b], "<f4")
            for n, _, a, b in proto_wire.fields(buf, start, end)
            if n == 1
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if kind != INT64_LIST:
        raise MalformedRowError(f"feature list kind {kind}: expected bytes, float or int64")
    values: list[int] = []
    for number, wire, a, b in proto_wire.fields(buf, start, end):
        if number != 1:
            continue
        if wire == VARINT:
            values.append(a)
            continue
        pos = a
        while pos < b:
            value, pos = proto_wire.varint(buf, pos)
            values.append(value)
    # int64 is two's complement in a varint of up to 64 bits.
    return np.array([v - (1 << 64) if v >= 1 << 63 else v for v in values], np.int64)
