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

from collections.abc import Iterator

import numpy as np

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
BYTES_LIST, FLOAT_LIST, INT64_LIST = 1, 2, 3
_FIELD_WIDTH = {_FIXED64: 8, _FIXED32: 4}


class MalformedRowError(ValueError):
    """A stored row that is not a well-formed tf.Example."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at buf[pos]."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) of each field of the message buf[start:end]: for a varint, a is
    its value; otherwise buf[a:b] holds the field's payload."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _LEN:
            length, pos = _varint(buf, pos)
            yield number, wire, pos, pos + length
            pos += length
        elif wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value, pos
        elif wire in _FIELD_WIDTH:
            yield number, wire, pos, pos + _FIELD_WIDTH[wire]
            pos += _FIELD_WIDTH[wire]
        else:
            raise MalformedRowError(f"wire type {wire} at byte {pos}")
    if pos != end:
        raise MalformedRowError(f"a field runs past its message's end ({pos} > {end})")


def feature_lists(buf: bytes, names: frozenset[str]) -> dict[str, tuple[int, int, int]]:
    """{name: (list kind, start, end)} of the named features: buf[start:end] is the feature's
    BytesList, FloatList or Int64List message (kind BYTES_LIST, FLOAT_LIST or INT64_LIST)."""
    found: dict[str, tuple[int, int, int]] = {}
    try:
        for number, wire, start, end in _fields(buf, 0, len(buf)):
            if number != 1 or wire != _LEN:
                continue
            for entry_number, entry_wire, entry_start, entry_end in _fields(buf, start, end):
                if entry_number != 1 or entry_wire != _LEN:
                    continue
                key, value = None, None
                for part, part_wire, part_start, part_end in _fields(buf, entry_start, entry_end):
                    if part == 1 and part_wire == _LEN:
                        key = bytes(buf[part_start:part_end]).decode("utf-8")
                    elif part == 2 and part_wire == _LEN:
                        value = (part_start, part_end)
                if key in names and value is not None:
                    for kind, list_wire, list_start, list_end in _fields(buf, *value):
                        if list_wire == _LEN:
                            found[key] = (kind, list_start, list_end)
    except IndexError as err:
        raise MalformedRowError("the row ends inside a field") from err
    return found


def bytes_values(buf: bytes, start: int, end: int) -> list[memoryview]:
    """The values of the BytesList message buf[start:end], as memoryviews of `buf` (no copy)."""
    view = memoryview(buf)
    return [view[a:b] for number, _, a, b in _fields(buf, start, end) if number == 1]


def number_values(buf: bytes, kind: int, start: int, end: int) -> np.ndarray:
    """The values of the FloatList (float32 [n]) or Int64List (int64 [n]) message buf[start:end]."""
    if kind == FLOAT_LIST:
        view = memoryview(buf)
        parts = [
            np.frombuffer(view[a:b], "<f4") for n, _, a, b in _fields(buf, start, end) if n == 1
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if kind != INT64_LIST:
        raise MalformedRowError(f"feature list kind {kind}: expected bytes, float or int64")
    values: list[int] = []
    for number, wire, a, b in _fields(buf, start, end):
        if number != 1:
            continue
        if wire == _VARINT:
            values.append(a)
            continue
        pos = a
        while pos < b:
            value, pos = _varint(buf, pos)
            values.append(value)
    # int64 is two's complement in a varint of up to 64 bits.
    return np.array([v - (1 << 64) if v >= 1 << 63 else v for v in values], np.int64)
