"""The README's own-data recipe, command for command, on small folders of real material
(fixtures: scikit-learn's handwritten digits, font glyphs, emoji animals, instruments
and flags, espeak-ng speech in English and eleven other languages, fluidsynth music)."""

import json
import os

import pytest

from experiments.evaluation.retrieval import DIRECTIONS
from fixtures import write_fixture
from fixtures.public_layouts import write_esc50_fixture
from tests import helpers

CONFIG = "experiments/configs/own_data.py"
COMMANDS = ("build_data", "train_teacher", "train", "evaluate")
# The smallest folders whose pair streams, less the held-out tenth, still fill a batch of 64.
SIZES = dict(train_pairs_per_class=8, test_per_class=3)


def _recipe_flags(folder, root) -> tuple[list[str], list[str]]:
    data = [f"--config={CONFIG}", f"--config.data.source={folder}",
            f"--config.data.data_dir={root / 'tfds'}"]  # fmt: skip
    return data, [*data, f"--workdir={root / 'run'}"]


def _run(command, flags):
    result = helpers.run_module(f"experiments.{command}", *flags, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    return output


@pytest.mark.parametrize(
    "kind, validation_per_class",
    [("digits", 0), ("glyphs", 2), ("animals", 0), ("instruments", 0), ("countries", 2)],
    ids=["digits", "glyphs+val", "animals", "instruments", "countries+val"],
)
def test_readme_recipe_runs_on_a_real_folder(tmp_path, kind, validation_per_class):
    folder = tmp_path / kind
    write_fixture(kind, str(folder), validation_per_class=validation_per_class, **SIZES)
    assert os.path.isfile(folder / "validation.jsonl") == bool(validation_per_class)
    data_flags, run_flags = _recipe_flags(folder, tmp_path)
    outputs = {c: _run(c, data_flags if c == "build_data" else run_flags) for c in COMMANDS}

    assert "[validation] kept" in outputs["build_data"]  # held out of train.jsonl or read from file
    assert "zero-padded" in outputs["build_data"]
    assert "(label)" in outputs["train_teacher"]  # no fine labels: the teacher learns the labels
    assert "validate " in outputs["train"]
    assert f"from {tmp_path / 'run' / 'best'}" in outputs["evaluate"]  # the best checkpoint
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert {"Random", "Linear Reg.", "CCA", "Normalized CCA", "Both"} <= set(results)
    assert results["Both"]["objective"] == "both"
    for row in results.values():
        assert set(row["retrieval"]) == {f"{a}->{b}" for a, b in DIRECTIONS}
        for scores in row["retrieval"].values():
            assert {"median_rank", "recall@1", "recall@5", "recall@10"} <= set(scores)
    assert 0.0 <= results["Both"]["dead_units"] <= 1.0
    assert "never active on the test set" in outputs["evaluate"]
    if kind == "digits":
        _public_eval_from_the_workdir_alone(tmp_path)


def _public_eval_from_the_workdir_alone(tmp_path):
    """The public-set command on spoken digit names in the ESC-50 layout: the run's words."""
    folder = tmp_path / "esc50"
    write_esc50_fixture(folder, "digits", sources_per_class=2, takes_per_source=1, folds=2)
    output = _run(
        "public_eval", [f"--workdir={tmp_path / 'run'}", "--set=esc50", f"--path={folder}"]
    )
    assert "zero-shot (text prompts)" in output
    result = json.loads((tmp_path / "run" / "public_eval" / "esc50.json").read_text())
    assert result["num_clips"] == 20 and result["skipped"]["total"] == 0
    assert result["vocabulary"]["classes_without_known_words"] == []
    assert set(result["zero_shot"]["per_fold"]) == {"1", "2"}


def test_user_mistakes_are_one_line(tmp_path):
    data_flags, run_flags = _recipe_flags(tmp_path / "missing", tmp_path)
    result = helpers.run_module("experiments.build_data", *data_flags)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: config.data.source=")
    assert "Traceback" not in result.stderr

    folder = tmp_path / "unlabeled"
    write_fixture("digits", str(folder), train_pairs_per_class=1, test_per_class=1)
    for name in ("train.jsonl", "test.jsonl"):
        rows = [json.loads(line) for line in (folder / name).read_text().splitlines()]
        (folder / name).write_text("".join(json.dumps({**r, "label": None}) + "\n" for r in rows))
    data_flags, run_flags = _recipe_flags(folder, tmp_path)
    _run("build_data", data_flags)
    result = helpers.run_module("experiments.train_teacher", *run_flags)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the data set has no labels")
    assert "torchvision" in last and "objective=ranking" in last

    # A longer clip without the frames to hold it: one line naming the time_steps that do.
    result = helpers.run_module(
        "experiments.build_data", *data_flags, "--config.data.audio.clip_seconds=3.0"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "clip_seconds=3.0" in last and "--config.data.audio.time_steps=188" in last
