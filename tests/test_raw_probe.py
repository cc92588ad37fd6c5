"""Linear probes on raw inputs: the features, the probe itself and the report section."""

import numpy as np
import pytest

from experiments.evaluation import raw_probes as raw_probe
from experiments.evaluation.context import EvalContext
from experiments.reports.tables import tables_markdown
from experiments.runtime import datasets
from tests import helpers


def test_bag_of_words_counts_known_words():
    vocabulary = {"dog": 0, "no": 1, "cat": 2}
    counts = raw_probe.bag_of_words(np.array(["a dog no cat dog", "fish"]), vocabulary)
    np.testing.assert_array_equal(counts, [[2, 1, 1], [0, 0, 0]])


def test_probe_reads_separable_features_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(4, size=400)
    centres = rng.normal(size=(4, 20)) * 3.0
    separable = centres[labels] + rng.normal(size=(400, 20))
    accuracy, l2 = raw_probe.probe_accuracy(
        separable[:200], labels[:200], separable[200:], labels[200:], 4
    )
    assert accuracy > 0.95 and l2 in raw_probe.L2_GRID
    noise = rng.normal(size=(400, 20))
    accuracy, _ = raw_probe.probe_accuracy(noise[:200], labels[:200], noise[200:], labels[200:], 4)
    assert accuracy < 0.45  # chance is 0.25


def test_raw_input_probes_on_the_tiny_world(tiny_world):
    config = helpers.tiny_config(*tiny_world)
    context = EvalContext(config, datasets.open_built(config.data), workdir=None)
    (row,) = raw_probe.evaluate(context)
    result = row.fields
    assert set(result["accuracy"]) == {"image", "sound", "text"}
    assert all(0.0 <= a <= 1.0 for a in result["accuracy"].values())
    assert all(l2 in raw_probe.L2_GRID for l2 in result["l2"].values())
    assert result["chance"] == pytest.approx(1 / result["num_classes"])
    assert all(n > 0 for n in (*result["num_train"].values(), *result["num_test"].values()))


def test_a_data_set_without_some_modality_is_a_clear_error_and_a_skip(tiny_world, caplog):
    config = helpers.tiny_config(*tiny_world)
    context = EvalContext(config, datasets.open_built(config.data), workdir=None)
    validation, test = context.split("validation"), context.split("test")
    for arrays in (validation, test):
        arrays["has_sound"] = np.zeros_like(arrays["has_sound"])  # as in a captioned-image set
    with pytest.raises(raw_probe.NoProbeRows, match="every modality"):
        raw_probe.raw_input_probes(context)
    with caplog.at_level("INFO", logger="absl"):
        assert raw_probe.evaluate(context) == []
    assert "raw-input probes skipped" in caplog.text


def test_report_shows_raw_probes_beside_the_network():
    scores = {"median_rank": 5.0, "recall@1": 0.1, "recall@5": 0.3, "recall@10": 0.5}
    table = {m: {"image": 0.7, "sound": 0.9, "text": 0.95} for m in ("image", "sound", "text")}
    both = {
        "retrieval": {"image->sound": scores},
        "transfer": {"table": {**table, "chance": dict.fromkeys(table, 0.25)}},
    }
    raw = {"accuracy": {"image": 0.06, "sound": 0.4, "text": 0.5}, "chance": 0.25}
    markdown = tables_markdown({"Both": both}, raw)
    section = markdown.split("## Linear probes")[1].split("## ")[0]
    assert "| modality | raw input | Both | chance |" in section
    assert "| IMG | 6.0 | 70.0 | 25.0 |" in section
    assert "| TXT | 50.0 | 95.0 | 25.0 |" in section
    assert "## Linear probes" not in tables_markdown({"Both": both})


def test_row_space_keeps_every_prediction_of_a_wide_probe():
    rng = np.random.default_rng(1)
    labels = rng.integers(3, size=90)
    wide = rng.normal(size=(90, 400)) + 2.0 * np.eye(3)[labels] @ rng.normal(size=(3, 400))
    coordinates, train = raw_probe._Coordinates.fit(wide[:60])
    test = coordinates(wide[60:])
    assert train.shape == (60, 61) and test.shape == (30, 61)
    standardized = (wide - coordinates.mean) / coordinates.std
    np.testing.assert_allclose(
        np.linalg.norm(test, axis=1), np.linalg.norm(standardized[60:], axis=1)
    )
    from alignment import transfer

    for l2 in (1e-2, 1.0):
        full = transfer.fit_linear_classifier(standardized[:60], labels[:60], 3, l2=l2)
        reduced = transfer.fit_linear_classifier(train, labels[:60], 3, l2=l2)
        np.testing.assert_allclose(
            reduced.logits(test), full.logits(standardized[60:]), rtol=1e-3, atol=1e-3
        )
