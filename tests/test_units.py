"""Hidden-unit analysis: top items, concept selectivity against its shuffled-label null, the picture grid."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from alignment import units

MODALITIES = ("image", "sound", "text")
N, U, K, TOP = 240, 24, 6, 10
CONCEPT_UNIT, CONCEPT = 7, 2
PARTIAL_UNIT, PARTIAL_CONCEPT = 3, 4  # a detector in image and sound only


def _world(seed=0):
    rng = np.random.default_rng(seed)
    acts, labels = {}, {}
    for m in MODALITIES:
        lab = rng.integers(0, K, size=N)
        a = rng.standard_normal((N, U))
        a[:, CONCEPT_UNIT] += 4.0 * (lab == CONCEPT)
        if m != "text":
            a[:, PARTIAL_UNIT] += 4.0 * (lab == PARTIAL_CONCEPT)
        acts[m], labels[m] = a, lab
    return acts, labels


def test_top_items_match_a_full_sort():
    a = np.random.default_rng(1).standard_normal((50, 6))
    np.testing.assert_array_equal(units.top_items(a, 7), np.argsort(-a, axis=0)[:7].T)
    with pytest.raises(ValueError):
        units.top_items(a, 51)


def test_scores_match_brute_force():
    acts, labels = _world(2)
    scores, concepts = units.unit_selectivity(acts, labels, k=TOP)
    for u in range(U):
        per_concept = []
        for c in range(K):
            fractions = []
            for m in MODALITIES:
                top = np.argsort(-acts[m][:, u])[:TOP]
                fractions.append(np.mean(labels[m][top] == c))
            per_concept.append(min(fractions))
        assert scores[u] == pytest.approx(max(per_concept))
        assert concepts[u] == int(np.argmax(per_concept))


def test_planted_concept_unit_is_selective():
    acts, labels = _world()
    scores, concepts = units.unit_selectivity(acts, labels, k=TOP)
    assert scores[CONCEPT_UNIT] == 1.0 and concepts[CONCEPT_UNIT] == CONCEPT
    assert scores[PARTIAL_UNIT] <= 0.5  # no concept rules its top sentences
    assert list(units.most_selective_units(scores, 1)) == [CONCEPT_UNIT]
    selective = np.flatnonzero(scores > 0.5)
    assert list(selective) == [CONCEPT_UNIT]
    assert units.selective_fraction(acts, labels, k=TOP) == pytest.approx(1 / U)


def test_shuffled_labels_score_lower():
    acts, labels = _world(3)
    real = units.selective_fraction(acts, labels, k=TOP)
    null = units.shuffled_selective_fraction(acts, labels, k=TOP, num_shuffles=5, seed=0)
    assert real > 0 and null < real
    assert null == units.shuffled_selective_fraction(acts, labels, k=TOP, num_shuffles=5, seed=0)


def test_mismatched_inputs_are_rejected():
    acts, labels = _world()
    with pytest.raises(ValueError):
        units.unit_selectivity(acts, {"image": labels["image"]})
    with pytest.raises(ValueError):
        units.unit_selectivity(acts, {**labels, "text": labels["text"][:-1]})


def test_grid_figure_has_one_row_per_unit():
    acts, labels = _world(4)
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(N, 16, 16, 3), dtype=np.uint8)
    spectrograms = rng.standard_normal((N, 20, 12)).astype(np.float32)
    captions = np.array(
        [f"a caption about concept {c} number {i}" for i, c in enumerate(labels["text"])]
    )
    items = units.grid_items([CONCEPT_UNIT, 0], acts, num_items=3)
    assert {m: i.shape for m, i in items.items()} == dict.fromkeys(acts, (2, 3))
    assert items["image"][0, 0] == np.argmax(acts["image"][:, CONCEPT_UNIT])
    figure = units.unit_grid_figure(
        images[items["image"]],
        spectrograms[items["sound"]],
        captions[items["text"]].tolist(),
        ["unit 7: dog", "unit 0"],
    )
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2 * (2 * 3 + 1)
    # The planted unit's first image is its most activating image item.
    shown = figure.axes[0].get_images()[0].get_array()
    np.testing.assert_array_equal(shown, images[np.argmax(acts["image"][:, CONCEPT_UNIT])])
    text = figure.axes[2 * 3].texts[0].get_text()
    assert f"concept {CONCEPT}" in text.splitlines()[0]
    figure.savefig(io.BytesIO(), format="png")  # renders without pyplot
    with pytest.raises(ValueError, match="titles"):
        units.unit_grid_figure(
            images[items["image"]], spectrograms[items["sound"]], [["a"] * 3] * 2, ["a"]
        )
    with pytest.raises(ValueError, match="missing"):
        units.grid_items([0], {"image": acts["image"]})


def test_dead_units_are_the_ones_silent_on_every_present_item():
    image = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    sound = np.array([[0.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 9.0]])
    present = {"image": np.array([True, True]), "sound": np.array([True, False])}
    # Unit 3 fires only on the absent sound row, unit 0 never: 2 of 4 units are dead.
    fraction = units.dead_unit_fraction({"image": image, "sound": sound}, present)
    assert fraction == 0.5
