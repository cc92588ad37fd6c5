"""Array tables: rows read from the tables are the rows the records hold, bit for bit, in any order; a
damaged or mismatched table is refused or passed over, never misread."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from data_pipelines import array_tables, records
from data_pipelines import input_pipeline as ip
from data_pipelines.builders.world_dataset import WorldBuilderConfig, WorldDataset, world_spec
from data_pipelines.world import WorldConfig

WORLD = WorldConfig.small(num_train_sound=10, num_train_text=7, num_validation=2, num_test=5)


@pytest.fixture(scope="module", params=["float32", "float16"])
def built(request, tmp_path_factory):
    spec = dataclasses.replace(world_spec(WORLD), float_storage=request.param)
    config = WorldBuilderConfig.make(
        f"tables-{request.param}", WORLD, spec=spec, background_sentences=200
    )
    builder = WorldDataset(data_dir=str(tmp_path_factory.mktemp("data")), config=config)
    builder.download_and_prepare()
    ip.write_row_index(builder)
    return builder


def _rows(size: int) -> np.ndarray:
    """Unordered, repeated and consecutive rows: every shape of run the reader splits a request into."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.integers(0, size, 9), np.arange(size), [size - 1, 0, 0]])


@pytest.mark.parametrize("stored_dtype", [False, True])
def test_tables_give_the_records_rows_bit_for_bit(built, stored_dtype):
    names = list(built.info.features)
    for split in built.info.splits:
        tabled, plain = records.Records(built, split), records.Records(built, split, tables=False)
        assert tabled.has_tables and not plain.has_tables
        rows = _rows(len(plain))
        got, want = tabled.read(rows, names, stored_dtype), plain.read(rows, names, stored_dtype)
        for name in names:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{split} {name}")


def test_a_modality_table_holds_only_the_rows_that_have_it(built):
    index = json.loads(
        (array_tables.split_dir(built.data_dir, "train") / "tables.json").read_text()
    )
    flags = ip._modality_flags(built, "train")
    assert index["rows"] == len(flags["has_image"]) == 17
    assert index["tables"]["sound"]["rows"] == int(flags["has_sound"].sum()) == 10
    assert index["tables"]["text"]["rows"] == index["tables"]["text_mask"]["rows"] == 7
    assert index["tables"]["label"]["rows"] == 17
    assert "id" not in index["tables"] and "caption" not in index["tables"]


def _copy(built, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(built.data_dir, folder)
    return ip._builder(str(folder))


def test_a_truncated_table_is_a_one_line_error(built, tmp_path):
    copy = _copy(built, tmp_path)
    table = array_tables.split_dir(copy.data_dir, "train") / "sound.npy"
    table.write_bytes(table.read_bytes()[:-100])
    reader = records.Records(copy, "train")
    with pytest.raises(array_tables.TableError, match="ends before row .*write the tables again"):
        reader.read(np.arange(len(reader)), ["sound"])


def test_tables_that_do_not_match_the_data_set_are_passed_over(built, tmp_path):
    copy = _copy(built, tmp_path)
    index_path = array_tables.split_dir(copy.data_dir, "test") / "tables.json"
    index = json.loads(index_path.read_text())
    index["rows"] += 1  # tables of another build of the split
    index_path.write_text(json.dumps(index))
    assert not records.Records(copy, "test").has_tables
    index_path.unlink()  # an interrupted write: no index
    assert not records.Records(copy, "test").has_tables
    assert records.Records(copy, "train").has_tables


def test_rows_out_of_range_are_refused(built):
    reader = records.Records(built, "train")
    with pytest.raises(IndexError, match="row 17 of the train split of 17 rows"):
        reader.read([3, 17], ["image"])


def test_training_batches_are_the_same_with_and_without_tables(built, tmp_path):
    copy = _copy(built, tmp_path)
    shutil.rmtree(array_tables.split_dir(copy.data_dir, "train").parent)
    assert not records.Records(copy, "train").has_tables
    with_tables = ip.train_batches(built, 4, seed=1, workers=2)
    without = ip.train_batches(copy, 4, seed=1)
    for _ in range(5):
        a, b = next(with_tables), next(without)
        for stream in a:
            assert a[stream].keys() == b[stream].keys()
            for name in a[stream]:
                np.testing.assert_array_equal(a[stream][name], b[stream][name])
    with_tables.close()


def test_building_a_data_set_built_without_tables_adds_them(tiny_world, tmp_path):
    from experiments.runtime import datasets
    from tests import helpers

    local_data, teacher_dir = tiny_world
    shutil.copytree(local_data, tmp_path / "data")
    data_cfg = helpers.tiny_config(str(tmp_path / "data"), teacher_dir).data
    builder = datasets.open_built(data_cfg)
    shutil.rmtree(array_tables.split_dir(builder.data_dir, "train").parent)
    assert not records.Records(builder, "train").has_tables
    datasets.build(data_cfg)
    assert all(records.Records(builder, split).has_tables for split in builder.info.splits)
