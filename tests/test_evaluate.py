"""Evaluation of a tiny trained checkpoint: the files it writes, the baselines and the tables."""

import json
import math
import os

import numpy as np
import pytest

from alignment import retrieval
from alignment.streams import MODALITIES
from data_pipelines import records
from experiments.configs import tiny
from experiments.evaluation import baselines, suite
from experiments.evaluation.context import METADATA, EvalContext, triplet_rows
from experiments.evaluation.retrieval import DIRECTIONS
from experiments.evaluation.rows import RANKS, RESULTS, VALIDATION, Row
from experiments.reports.tables import write_tables
from experiments.runtime import datasets
from experiments.runtime.embedding import eval_batch_size
from experiments.training import students
from experiments.workflows.evaluate import evaluate_run, evaluate_workdir
from tests import helpers

BASELINE_ROWS = ("Random", "Linear Reg.", "CCA", "Normalized CCA")
DIRECTION_KEYS = {f"{a}->{b}" for a, b in DIRECTIONS}


@pytest.fixture(scope="module")
def tiny_run(tiny_world, tmp_path_factory):
    config = helpers.tiny_config(*tiny_world, total_steps=2, checkpoint_every=2, log_every=2)
    workdir = str(tmp_path_factory.mktemp("evaluate_run"))
    students.train(config, workdir)
    return config, workdir


def _assert_png(path):
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _assert_retrieval(table, chunk):
    assert set(table) == DIRECTION_KEYS
    for scores in table.values():
        assert 1 <= scores["median_rank"] <= chunk
        recalls = [scores[f"recall@{k}"] for k in (1, 5, 10)]
        assert all(0 <= r <= 1 for r in recalls) and recalls == sorted(recalls)


def test_evaluate_writes_results_tables_and_plots(tiny_run, monkeypatch):
    config, workdir = tiny_run
    reads = []
    read = records.Records.read

    def counted(self, rows, names):
        reads.append((tuple(names), len(rows)))
        return read(self, rows, names)

    monkeypatch.setattr(records.Records, "read", counted)
    markdown = evaluate_run(config, workdir)
    # Every evaluator reads from one context: each split's metadata once, inputs a batch at a time.
    splits = datasets.open_built(config.data).info.splits
    sizes = sorted(splits[s].num_examples for s in ("test", "validation"))
    assert sorted(n for names, n in reads if names == METADATA) == sizes
    inputs = [n for names, n in reads if set(names) & set(MODALITIES)]
    assert inputs and max(inputs) <= eval_batch_size()
    out = os.path.join(workdir, "eval")
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert list(results) == [*BASELINE_ROWS, "Both"]
    both = results["Both"]
    assert both["step"] == 2 and both["layer"] == "fc7"
    chunk = both["chunk"]
    assert chunk == min(config.eval_chunk, both["num_pairs"])
    for row in results.values():
        _assert_retrieval(row["retrieval"], chunk)
    assert results["Linear Reg."]["features"]["image"].startswith("teacher")

    transfer = both["transfer"]
    assert transfer["train_items"] == "validation split"
    table = transfer["table"]
    for source in ("image", "sound", "text"):
        assert all(0 <= table[source][m] <= 1 for m in ("image", "sound", "text"))
    assert table["chance"]["image"] == pytest.approx(1 / transfer["num_classes"])

    # The trained row against each linear baseline: the difference of the median ranks it reports,
    # inside its bootstrap interval.
    assert list(both["versus"]) == ["Linear Reg.", "CCA", "Normalized CCA"]
    for baseline, cells in both["versus"].items():
        assert set(cells) == DIRECTION_KEYS
        for direction, cell in cells.items():
            expected = (
                both["retrieval"][direction]["median_rank"]
                - results[baseline]["retrieval"][direction]["median_rank"]
            )
            assert cell["difference"] == pytest.approx(expected)
            assert cell["low"] <= cell["difference"] <= cell["high"]
            assert cell["verdict"] in ("wins", "loses", "within")
    assert all("versus" not in results[name] for name in BASELINE_ROWS)

    units = both["units"]
    assert 0 <= units["shuffled_fraction"] <= 1 and 0 <= units["selective_fraction"] <= 1
    assert len(units["top_units"]) > 0
    assert units["grid"] == "units.png"
    _assert_png(os.path.join(out, units["grid"]))
    _assert_png(os.path.join(out, "median_ranks.png"))

    with open(os.path.join(out, "tables.md")) as f:
        assert f.read() == markdown
    headings = ("Table 1", "Table 2", "Table 3", "Recall@k", "Hidden units", "Linear probes")
    for heading in (*headings, "trained minus baseline"):
        assert heading in markdown
    with open(os.path.join(out, "raw_probes.json")) as f:
        probes = json.load(f)
    assert set(probes["accuracy"]) == {"image", "sound", "text"}
    assert all(0 <= a <= 1 for a in probes["accuracy"].values())
    for header in ("| IMG->SND | SND->IMG | IMG->TXT | TXT->IMG |", "| TXT->SND | SND->TXT |"):
        assert header in markdown
    for row in results:
        assert f"| {row} |" in markdown


def test_baselines_without_teacher_use_pixels_and_are_finite(tiny_world):
    config = helpers.tiny_config(*tiny_world, **{"teacher.path": ""})
    context = EvalContext(config, datasets.open_built(config.data), workdir=None)
    rows = baselines.evaluate(context, max_pairs=64)
    assert {row.table for row in rows} == {RESULTS, RANKS}
    results = {row.name: row.fields for row in rows if row.table == RESULTS}
    assert list(results) == list(BASELINE_ROWS)
    # Every baseline's RANKS row holds the ranks its median ranks were taken from.
    for row in rows:
        if row.table == RANKS:
            for direction, ranks in row.fields.items():
                median = float(np.mean(np.median(ranks, axis=1)))
                assert median == results[row.name]["retrieval"][direction]["median_rank"]
    assert results["CCA"]["features"]["image"].startswith("raw pixels")
    assert all(0 < n <= 64 for n in results["CCA"]["train_pairs"].values())
    for row in results.values():
        assert set(row["retrieval"]) == DIRECTION_KEYS
        assert all(
            math.isfinite(v) for scores in row["retrieval"].values() for v in scores.values()
        )
    # Ranking random embeddings gives about half the chunk.
    random_ranks = [s["median_rank"] for s in results["Random"]["retrieval"].values()]
    chunk = results["Random"]["chunk"]
    assert 0.3 * chunk < np.mean(random_ranks) < 0.7 * chunk


def test_missing_checkpoint_is_a_clear_error(tiny_world, tmp_path):
    config = helpers.tiny_config(*tiny_world)
    with pytest.raises(FileNotFoundError, match="train first"):
        evaluate_run(config, str(tmp_path))


def _constant(context):
    """A toy method that puts every item at one point: every true match ties with its whole chunk."""
    rows = triplet_rows(context.split("test"))
    chunk = min(context.config.eval_chunk, len(rows))
    ranks = retrieval.direction_ranks({m: np.ones((len(rows), 4)) for m in MODALITIES}, None, chunk)
    fields = {"retrieval": retrieval.table_of_ranks(ranks), "chunk": chunk, "num_pairs": len(rows)}
    return [Row(RESULTS, "Constant", fields), Row(RANKS, "Constant", ranks)]


def _toy_validation(context):
    return [Row(VALIDATION, "toy", {"val/step": float(context.student.step)})]


def test_a_new_evaluator_is_a_function_a_registry_line_and_a_config_line(
    tiny_world, tiny_run, monkeypatch
):
    _, workdir = tiny_run
    monkeypatch.setitem(suite.REGISTRY, "constant", suite.Evaluator(_constant, per_run=False))
    monkeypatch.setitem(suite.REGISTRY, "toy_validation", suite.Evaluator(_toy_validation))
    evals = {
        "evals.test": ("retrieval", "constant"),
        "evals.validation": ("validation", "toy_validation"),
    }
    config = helpers.tiny_config(*tiny_world, total_steps=2, **evals)
    markdown = evaluate_run(config, workdir)
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        results = json.load(f)
    assert list(results) == ["Both", "Constant"]
    chunk = results["Constant"]["chunk"]
    for scores in results["Constant"]["retrieval"].values():
        assert scores["median_rank"] == (chunk + 1) / 2
    table1 = markdown.split("## Table 1")[1].split("## Table 2")[0]
    assert f"| Constant | {(chunk + 1) / 2:.1f} |" in table1
    # Without the versus evaluator in config.evals, no comparison is made.
    assert "versus" not in results["Both"] and "trained minus baseline" not in markdown

    scores = suite.validate(EvalContext(config, datasets.open_built(config.data), workdir))
    assert scores["val/step"] == 2.0 and "val/mean_median_rank" in scores


def test_unknown_evaluators_are_refused_in_one_line(tiny_world, tiny_run):
    _, workdir = tiny_run
    config = helpers.tiny_config(*tiny_world, **{"evals.test": ("retrieval", "nope")})
    with pytest.raises(ValueError, match="config.evals.test: no evaluator named 'nope'") as error:
        evaluate_run(config, workdir)
    assert "\n" not in str(error.value)
    context = EvalContext(config, datasets.open_built(config.data), workdir)
    with pytest.raises(ValueError, match="unknown evaluator 'nope'"):
        suite.run(context, ["nope"])


def test_evaluate_workdir_reads_the_runs_config(tiny_run):
    _, workdir = tiny_run
    evaluate_workdir(workdir, {"evals.test": ("retrieval",), "eval_chunk": 8})
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        results = json.load(f)
    assert list(results) == ["Both"] and results["Both"]["chunk"] == 8


def test_evaluate_from_the_workdir_alone_uses_the_runs_overrides(tiny_world, tmp_path):
    workdir = str(tmp_path / "run")
    flags = helpers.config_flags(
        *tiny_world, **{"loss.objective": "ranking", "total_steps": 3, "checkpoint_every": 3}
    )
    trained = helpers.run_module("experiments.train", *flags, f"--workdir={workdir}")
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = helpers.run_module("experiments.evaluate", f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "config: tiny (saved by the run in" in result.stderr
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        ranking = json.load(f)["Ranking"]
    assert ranking["objective"] == "ranking" and ranking["step"] == 3
    # A flag given on top still overrides the saved value.
    again = helpers.run_module(
        "experiments.evaluate", f"--workdir={workdir}", "--config.eval_chunk=8"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        assert json.load(f)["Ranking"]["chunk"] == 8


def _row(rank, transfer=None):
    scores = {"median_rank": rank, "recall@1": 0.1, "recall@5": 0.3, "recall@10": 0.5}
    return {
        "retrieval": {key: dict(scores) for key in DIRECTION_KEYS},
        "chunk": 1000,
        "num_pairs": 5000,
        "transfer": transfer,
    }


def test_write_tables_lists_every_row_in_paper_order(tmp_path):
    accuracy = {m: {"image": 0.5, "sound": 0.25, "text": 0.125} for m in ("image", "sound", "text")}
    transfer = {
        "layer": "fc7",
        "num_classes": 4,
        "train_items": "validation split",
        "table": {**accuracy, "chance": dict.fromkeys(("image", "sound", "text"), 0.25)},
    }
    rows = {
        "My variant": _row(3.0),
        "Both": _row(7.5, transfer),
        "Random": _row(500.0),
        "CCA": _row(float("nan")),
    }
    markdown = write_tables(rows, str(tmp_path))
    assert (tmp_path / "tables.md").read_text() == markdown
    table1 = markdown.split("## Table 1")[1].split("## Table 2")[0]
    positions = [table1.index(f"| {name} |") for name in ("Random", "CCA", "Both", "My variant")]
    assert positions == sorted(positions)
    assert "| Random | 500.0 | 500.0 | 500.0 | 500.0 |" in table1
    assert "| CCA | - | - | - | - |" in table1
    assert "5 chunk(s) of 1000 test pairs" in markdown
    # Table 2 carries the paper's numbers beside ours.
    assert "| Both | 7.5 | 7.5 | 135.0 | 140.5 |" in markdown
    assert "| IMG | 50.0 | 25.0 | 12.5 |" in markdown.split("## Table 3")[1]
    assert "| My variant | 10 / 30 / 50 |" in markdown


def test_the_demo_runs_per_run_evaluators_for_each_run_and_the_others_once():
    names = tiny.get_config().evals.test
    assert suite.per_run(names) == ["retrieval", "transfer", "units"]
    assert suite.once(names) == ["baselines", "raw_probes", "versus"]
