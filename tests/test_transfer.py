"""Zero-shot classifier transfer: aligned representations transfer, unaligned ones sit at chance."""

import numpy as np
import pytest

from alignment import transfer

NUM_CLASSES = 8
MODALITIES = ("image", "sound", "text")


def _split(features_fn, n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, size=n)
    return features_fn(labels, rng), labels


def _class_code(labels, rng, noise=0.3, extra=12):
    """One-hot-ish class embeddings shared by every modality, plus noise and nuisance dimensions."""
    onehot = np.eye(NUM_CLASSES)[labels]
    features = np.concatenate([3.0 * onehot, rng.standard_normal((len(labels), extra))], axis=1)
    return features + noise * rng.standard_normal(features.shape)


def _random(labels, rng):
    return rng.standard_normal((len(labels), NUM_CLASSES + 12))


def _data(feature_fns, n, seed):
    return {m: _split(fn, n, seed + i) for i, (m, fn) in enumerate(feature_fns.items())}


def test_perfect_representation_transfers_everywhere():
    fns = dict.fromkeys(MODALITIES, _class_code)
    result = transfer.transfer_matrix(_data(fns, 300, 0), _data(fns, 200, 10), NUM_CLASSES)
    assert result.modalities == MODALITIES
    np.testing.assert_array_equal(result.accuracy, np.ones((3, 3)))
    assert result.chance == pytest.approx(1 / NUM_CLASSES)


def test_random_representation_is_near_chance():
    fns = dict.fromkeys(MODALITIES, _random)
    result = transfer.transfer_matrix(_data(fns, 300, 20), _data(fns, 600, 30), NUM_CLASSES)
    assert result.accuracy.shape == (3, 3)
    assert np.all(np.abs(result.accuracy - result.chance) < 0.07)


def test_only_aligned_modalities_transfer():
    fns = {"image": _class_code, "sound": _random, "text": _class_code}
    result = transfer.transfer_matrix(_data(fns, 300, 40), _data(fns, 400, 50), NUM_CLASSES)
    acc = dict(zip(MODALITIES, result.accuracy, strict=True))
    assert acc["image"][2] > 0.95 and acc["text"][0] > 0.95
    assert abs(acc["image"][1] - 1 / NUM_CLASSES) < 0.07
    assert abs(acc["sound"][2] - 1 / NUM_CLASSES) < 0.07


def test_classifier_ignores_feature_scale_and_fits_separable_data():
    features, labels = _split(_class_code, 200, 60)
    clf = transfer.fit_linear_classifier(features, labels, NUM_CLASSES)
    assert clf.weights.shape == (NUM_CLASSES + 12, NUM_CLASSES) and clf.bias.shape == (NUM_CLASSES,)
    assert clf.accuracy(features, labels) == 1.0
    scale = np.random.default_rng(61).uniform(0.1, 10.0, size=(200, 1))
    np.testing.assert_array_equal(clf.predict(features * scale), clf.predict(features))


def test_majority_rate_and_table():
    fns = dict.fromkeys(MODALITIES, _class_code)
    test = _data(fns, 50, 70)
    test["sound"] = (test["sound"][0], np.zeros(50, dtype=int))  # one class only
    result = transfer.transfer_matrix(_data(fns, 100, 80), test, NUM_CLASSES)
    assert result.majority[1] == 1.0
    expected = np.bincount(test["image"][1], minlength=NUM_CLASSES).max() / 50
    assert result.majority[0] == pytest.approx(expected)
    table = result.table()
    assert set(table) == {*MODALITIES, "chance", "majority"}
    assert table["image"]["text"] == result.accuracy[0, 2]
    assert table["chance"]["sound"] == pytest.approx(1 / NUM_CLASSES)


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError):
        transfer.fit_linear_classifier(np.ones((3, 2)), np.array([0, 1, NUM_CLASSES]), NUM_CLASSES)
    with pytest.raises(ValueError, match="differ"):
        data = {"image": (np.ones((3, 2)), np.zeros(3, dtype=int))}
        transfer.transfer_matrix(data, {"sound": data["image"]}, NUM_CLASSES)
