"""Evaluation streams its inputs: rows read by index a batch at a time, embeddings equal to those of the
whole arrays in memory, and no read of inputs larger than a batch (or the unit grid's few items)."""

import numpy as np
import pytest

from data_pipelines import input_pipeline, records
from experiments.evaluation import baselines, context, raw_probes, suite, units
from experiments.evaluation.context import EvalContext
from experiments.runtime import datasets
from experiments.runtime.embedding import embed_modality
from experiments.training import students
from tests import helpers

BATCH = 8  # a multiple of the 8 test devices, far below the tiny world's splits


@pytest.fixture(scope="module")
def tiny_run(tiny_world, tmp_path_factory):
    config = helpers.tiny_config(*tiny_world, total_steps=2, checkpoint_every=2, log_every=2)
    workdir = str(tmp_path_factory.mktemp("streaming_run"))
    students.train(config, workdir)
    return config, workdir


@pytest.fixture
def small_batches(monkeypatch):
    for module in (context, baselines, raw_probes):
        monkeypatch.setattr(module, "eval_batch_size", lambda: BATCH)


@pytest.fixture
def reads(monkeypatch):
    """(feature names, number of rows) of every read of stored rows."""
    seen = []
    read = records.Records.read

    def counted(self, rows, names):
        seen.append((tuple(names), len(rows)))
        return read(self, rows, names)

    monkeypatch.setattr(records.Records, "read", counted)
    return seen


def test_pad_batch_pads_every_feature_and_masks_the_padding():
    strings = np.array([b"a", b"b"], dtype=object)
    batch = input_pipeline.pad_batch(
        {"x": np.ones((2, 3)), "id": strings, "s": strings.astype(str)}, 4
    )
    assert batch["x"].shape == (4, 3) and not batch["x"][2:].any()
    assert batch["id"].tolist() == [b"a", b"b", b"", b""]
    assert batch["s"].tolist() == ["a", "b", "", ""]
    assert batch["mask"].tolist() == [True, True, False, False]


@pytest.mark.parametrize("hosts", [1, 2])
def test_eval_batches_of_chosen_rows_read_one_batch_at_a_time(tiny_world, reads, hosts):
    builder = datasets.open_built(helpers.tiny_config(*tiny_world).data)
    chosen = np.array([40, 3, 17, 5, 90, 64, 11])
    ids = records.Records(builder, "test").read(chosen, ["id"])["id"]
    reads.clear()
    seen = []
    for p in range(hosts):
        batches = input_pipeline.eval_batches(
            builder, "test", 4, features=["id"], rows=chosen, process_index=p, process_count=hosts
        )
        for batch in batches:
            assert len(batch["id"]) == 4 // hosts
            seen += batch["id"][batch["mask"]].tolist()
    assert sorted(seen) == sorted(ids.tolist())
    assert max(n for _, n in reads) <= 4 // hosts
    if hosts == 1:
        assert seen == ids.tolist()


def test_streamed_embeddings_equal_those_of_whole_arrays(tiny_run, small_batches):
    config, workdir = tiny_run
    builder = datasets.open_built(config.data)
    evaluation = EvalContext(config, builder, workdir)
    streamed = evaluation.embeddings("test", ["fc6", "fc7"])
    whole = input_pipeline.load_split(builder, "test", ["image", "sound", "text", "text_mask"])
    student = evaluation.student
    for modality, by_layer in streamed.items():
        expected = embed_modality(
            student.embed_fn, student.params, whole, modality, ["fc6", "fc7"], BATCH
        )
        for layer, values in by_layer.items():
            assert values.shape == (len(whole["image"]), config.model.fc_dims[0])
            np.testing.assert_array_equal(values, expected[layer])


def test_no_evaluator_reads_more_inputs_than_a_batch(tiny_run, small_batches, reads):
    config, workdir = tiny_run
    evaluation = EvalContext(config, datasets.open_built(config.data), workdir)
    rows = suite.evaluate(evaluation)
    assert {row.name for row in rows} >= {"Both", "CCA", "raw input"}
    suite.validate(evaluation)
    inputs = [n for names, n in reads if {"image", "sound", "text"} & set(names)]
    assert inputs and max(inputs) <= max(BATCH, units.GRID_UNITS * 4)
