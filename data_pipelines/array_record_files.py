"""ArrayRecord files read by record index through byte-range reads of any etils.epath filesystem.

The ArrayRecord library opens local files only, so a data set in a bucket (gs://...) is read here: the
file's last 64 KiB block holds a postscript that points at its footer; the footer lists where each chunk
of records begins; a record is one range read of its chunk, decoded in Python (zstd through the
zstandard package). The layout is Riegeli's records format (a 24-byte block header interrupts the byte
stream at every multiple of 64 KiB; each chunk is a 40-byte header and its data) with ArrayRecord's
footer and postscript. Hashes are not verified: a damaged chunk fails to decode or to parse downstream.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from concurrent import futures
from typing import BinaryIO

import zstandard
from etils import epath

from data_pipelines import proto_wire

_BLOCK = 1 << 16
_BLOCK_HEADER = 24
_CHUNK_HEADER = 40
_SIMPLE_CHUNK = ord("r")
_POSTSCRIPT_MAGIC = 0x71930E704FDAE05E
PARALLEL_READS = 16  # range reads in flight per split reader


class ArrayRecordFormatError(ValueError):
    """A file is not an ArrayRecord file this reader understands."""


def _proto_fields(message: bytes) -> dict[int, int | bytes]:
    """The varint and length-delimited fields of a serialized proto (the last value of each number)."""
    found: dict[int, int | bytes] = {}
    try:
        for number, wire_type, a, b in proto_wire.fields(message, 0, len(message)):
            if wire_type == proto_wire.VARINT:
                found[number] = a
            elif wire_type == proto_wire.LEN:
                found[number] = message[a:b]
            else:
                raise ArrayRecordFormatError(
                    f"unexpected proto wire type {wire_type} in an ArrayRecord footer"
                )
    except proto_wire.WireFormatError as err:
        raise ArrayRecordFormatError(f"an ArrayRecord footer is not a proto: {err}") from None
    return found


def _without_block_headers(raw: bytes, start: int) -> bytes:
    """The bytes of file range [start, start + len(raw)) with the block headers inside it removed."""
    pieces, pos, end = [], start, start + len(raw)
    while pos < end:
        in_block = pos % _BLOCK
        if in_block < _BLOCK_HEADER:  # inside a block header: skip the rest of it
            pos += _BLOCK_HEADER - in_block
            continue
        stop = min(end, pos - in_block + _BLOCK)
        pieces.append(raw[pos - start : stop - start])
        pos = stop
    return b"".join(pieces)


def _decompress(compression: int, block: bytes, pos: int, size: int) -> bytes:
    """`size` bytes of `block` from `pos`, decompressed (a compressed block starts with its varint
    decompressed size)."""
    if compression == 0:
        return block[pos : pos + size]
    if compression != ord("z"):
        raise ArrayRecordFormatError(
            f"ArrayRecord chunk compressed with {chr(compression)!r}: only zstd and none are read remotely"
        )
    decoded_size, start = proto_wire.varint(block, pos)
    return zstandard.ZstdDecompressor().decompress(
        block[start : pos + size], max_output_size=decoded_size
    )


def decode_chunk(raw: bytes, start: int) -> list[bytes]:
    """The records of the simple chunk whose bytes (block headers included) are `raw`, read from file
    position `start`."""
    data = _without_block_headers(raw, start)
    header = data[:_CHUNK_HEADER]
    data_size = int.from_bytes(header[8:16], "little")
    chunk_type = header[24]
    num_records = int.from_bytes(header[25:32], "little")
    if chunk_type != _SIMPLE_CHUNK:
        raise ArrayRecordFormatError(
            f"ArrayRecord chunk of type {chr(chunk_type)!r}: only simple chunks ('r') are read remotely"
        )
    body = data[_CHUNK_HEADER : _CHUNK_HEADER + data_size]
    if len(body) != data_size:
        raise ArrayRecordFormatError(
            "an ArrayRecord chunk ends before its data (a truncated file?)"
        )
    compression = body[0]
    sizes_size, pos = proto_wire.varint(body, 1)
    sizes = _decompress(compression, body, pos, sizes_size)
    values = _decompress(compression, body, pos + sizes_size, len(body) - pos - sizes_size)
    records, offset, cursor = [], 0, 0
    for _ in range(num_records):
        size, cursor = proto_wire.varint(sizes, cursor)
        records.append(values[offset : offset + size])
        offset += size
    return records


def _read_range(handle: BinaryIO, start: int, stop: int) -> bytes:
    handle.seek(start)
    return handle.read(stop - start)


class ArrayRecordFile:
    """One ArrayRecord file: its chunk index is read once (two range reads), then record i is one range
    read of the chunk that holds it. Safe to share between threads (each read opens its own handle)."""

    def __init__(self, path: epath.PathLike):
        self.path = epath.Path(path)
        size = self.path.stat().length
        if size < _BLOCK:
            raise ArrayRecordFormatError(
                f"{self.path} is smaller than 64 KiB: not an ArrayRecord file"
            )
        tail_start = size - _BLOCK
        with self.path.open("rb") as handle:
            # The last block holds the postscript (the writer stores copies of it: the first is read).
            postscripts = decode_chunk(_read_range(handle, tail_start, size), tail_start)
            fields = _proto_fields(postscripts[0]) if postscripts else {}
            if fields.get(2) != _POSTSCRIPT_MAGIC or not isinstance(fields.get(1), int):
                raise ArrayRecordFormatError(f"{self.path} has no ArrayRecord postscript")
            footer_offset = int(fields[1])
            footer = decode_chunk(_read_range(handle, footer_offset, tail_start), footer_offset)
        entries = [_proto_fields(entry) for entry in footer[1:]]
        self._chunk_starts = [int(entry.get(1, 0)) for entry in entries] + [footer_offset]
        counts = [int(entry.get(3, 0)) for entry in entries]
        self._first_record = [0]
        for count in counts:
            self._first_record.append(self._first_record[-1] + count)

    def __len__(self) -> int:
        return self._first_record[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """(chunk, position in the chunk) of record `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} of {self.path}, which holds {len(self)}")
        chunk = bisect.bisect_right(self._first_record, index) - 1
        return chunk, index - self._first_record[chunk]

    def read_chunk(self, chunk: int) -> list[bytes]:
        """The records of one chunk: one range read."""
        start, stop = self._chunk_starts[chunk], self._chunk_starts[chunk + 1]
        with self.path.open("rb") as handle:
            return decode_chunk(_read_range(handle, start, stop), start)


class ArrayRecordSource:
    """Records of a TFDS split by index across its files (TFDS file instructions: filename, skip, take),
    the same rows and order as `builder.as_data_source(split)` with raw bytes.

    The chunks a call asks for are read concurrently (`parallel_reads` range reads in flight): on an
    object store each read waits tens of milliseconds for its first byte, so reading a batch's rows one
    after another would bound a host to a few dozen rows a second."""

    def __init__(self, instructions: Sequence, parallel_reads: int = PARALLEL_READS):
        self._instructions = list(instructions)
        self._files: dict[str, ArrayRecordFile] = {}
        self._lock = threading.Lock()
        self._pool = futures.ThreadPoolExecutor(parallel_reads, thread_name_prefix="array-record")
        self._starts = [0]
        for instruction in self._instructions:
            self._starts.append(self._starts[-1] + int(instruction.take))

    def __len__(self) -> int:
        return self._starts[-1]

    def _file(self, filename: str) -> ArrayRecordFile:
        with self._lock:
            if filename not in self._files:
                self._files[filename] = ArrayRecordFile(filename)
            return self._files[filename]

    def __getitems__(self, rows: Sequence[int]) -> list[bytes]:
        located = []
        for row in rows:
            if not 0 <= row < len(self):
                raise IndexError(f"row {row} of a split of {len(self)} rows")
            which = bisect.bisect_right(self._starts, row) - 1
            instruction = self._instructions[which]
            file = self._file(instruction.filename)
            chunk, position = file.locate(int(instruction.skip) + row - self._starts[which])
            located.append((file, chunk, position))
        wanted = list(dict.fromkeys((file, chunk) for file, chunk, _ in located))
        chunks = dict(
            zip(wanted, self._pool.map(lambda fc: fc[0].read_chunk(fc[1]), wanted), strict=True)
        )
        return [chunks[file, chunk][position] for file, chunk, position in located]
