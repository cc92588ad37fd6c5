"""The protobuf wire format, read in place: varints and the fields of a serialized message, as
positions in its bytes (no objects, no copies). Used to read stored rows (example_bytes) and ArrayRecord
footers (array_record_files)."""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_FIELD_WIDTH = {FIXED64: 8, FIXED32: 4}


class WireFormatError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at buf[pos]."""
    result = shift = 0
    try:
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
    except IndexError:
        raise WireFormatError("the message ends inside a varint") from None


def fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, a, b) of each field of the message buf[start:end]: for a varint, a is
    its value; otherwise buf[a:b] holds the field's payload."""
    pos = start
    while pos < end:
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == LEN:
            length, pos = varint(buf, pos)
            yield number, wire, pos, pos + length
            pos += length
        elif wire == VARINT:
            value, pos = varint(buf, pos)
            yield number, wire, value, pos
        elif wire in _FIELD_WIDTH:
            yield number, wire, pos, pos + _FIELD_WIDTH[wire]
            pos += _FIELD_WIDTH[wire]
        else:
            raise WireFormatError(f"wire type {wire} at byte {pos}")
    if pos != end:
        raise WireFormatError(f"a field runs past its message's end ({pos} > {end})")
