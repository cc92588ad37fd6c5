"""The byte-range ArrayRecord reader (for data sets on remote filesystems) returns exactly what the
ArrayRecord library reads, whatever the writer's grouping, compression and record sizes."""

import threading
import time
import types

import numpy as np
import pytest
from array_record.python import array_record_module

from data_pipelines import array_record_files


def _records(count: int, rng: np.random.Generator) -> list[bytes]:
    # Sizes from empty to several 64 KiB blocks, so chunks start, end and break inside block headers.
    sizes = rng.choice([0, 1, 23, 1000, 40_000, 70_000, 200_000], size=count)
    # Half random bytes (incompressible), half runs (compressible): both paths of the decoder.
    return [
        rng.bytes(int(size)) if i % 2 else bytes([i % 251]) * int(size)
        for i, size in enumerate(sizes)
    ]


def _instruction(filename: str, skip: int, take: int) -> types.SimpleNamespace:
    """A TFDS file instruction: rows skip .. skip + take - 1 of one file."""
    return types.SimpleNamespace(filename=filename, skip=skip, take=take)


def _write(path: str, records: list[bytes], options: str) -> None:
    writer = array_record_module.ArrayRecordWriter(path, options)
    for record in records:
        writer.write(record)
    writer.close()


@pytest.mark.parametrize(
    "options", ["group_size:1", "group_size:4", "group_size:1,uncompressed", "group_size:64,zstd:1"]
)
def test_every_record_equals_the_array_record_library(tmp_path, options):
    rng = np.random.default_rng(0)
    records = _records(37, rng)
    path = str(tmp_path / "shard.array_record")
    _write(path, records, options)
    library = array_record_module.ArrayRecordReader(path)
    expected = library.read(list(range(len(records))))
    assert expected == records

    assert len(array_record_files.ArrayRecordFile(path)) == len(records)
    source = array_record_files.ArrayRecordSource([_instruction(path, 0, len(records))])
    order = [int(i) for i in rng.permutation(len(records))] + [3, 3, 0]
    assert source.__getitems__(order) == [records[i] for i in order]
    with pytest.raises(IndexError):
        source.__getitems__([len(records)])


def test_a_split_over_several_files_reads_the_instructed_rows(tmp_path):
    rng = np.random.default_rng(1)
    shards = [_records(9, rng), _records(5, rng)]
    names = []
    for n, records in enumerate(shards):
        names.append(str(tmp_path / f"split.array_record-0000{n}-of-00002"))
        _write(names[-1], records, "group_size:1")
    # Rows 2..8 of the first file, then rows 0..3 of the second: a sliced split's instructions.
    source = array_record_files.ArrayRecordSource(
        [_instruction(names[0], 2, 7), _instruction(names[1], 0, 4)]
    )
    expected = shards[0][2:9] + shards[1][:4]
    assert len(source) == len(expected)
    rows = [10, 0, 6, 7, 10]
    assert source.__getitems__(rows) == [expected[r] for r in rows]


def test_files_it_cannot_read_fail_in_one_line(tmp_path):
    small = tmp_path / "small.array_record"
    small.write_bytes(b"x" * 100)
    with pytest.raises(array_record_files.ArrayRecordFormatError, match="smaller than 64 KiB"):
        array_record_files.ArrayRecordFile(str(small))
    brotli = str(tmp_path / "brotli.array_record")
    _write(brotli, [b"abc" * 10], "group_size:1,brotli:6")
    with pytest.raises(array_record_files.ArrayRecordFormatError, match="only zstd and none"):
        array_record_files.ArrayRecordSource([_instruction(brotli, 0, 1)]).__getitems__([0])


def test_the_chunks_of_one_call_are_read_concurrently(tmp_path, monkeypatch):
    path = str(tmp_path / "rows.array_record")
    records = _records(12, np.random.default_rng(2))
    _write(path, records, "group_size:1")
    source = array_record_files.ArrayRecordSource([_instruction(path, 0, 12)], parallel_reads=4)
    source.__getitems__([0])  # the file's index is read here, outside the measured call
    active, most = [0], [0]
    lock = threading.Lock()
    read_range = array_record_files._read_range

    def slow_read_range(handle, start, stop):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        # Long enough that the reads of one call overlap when they are issued together.
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return read_range(handle, start, stop)

    monkeypatch.setattr(array_record_files, "_read_range", slow_read_range)
    rows = list(range(11, -1, -1))
    assert source.__getitems__(rows) == [records[r] for r in rows]
    assert 1 < most[0] <= 4
