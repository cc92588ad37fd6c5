"""Linear probes on raw inputs: how well raw pixels, spectrograms and bags of words name the concept.

The same classifier that scores the network's representation in the classifier-transfer matrix
(alignment.transfer.fit_linear_classifier, trained on the labeled validation rows, tested on the labeled
test rows) is fit on raw inputs of each modality:
  image: pixels in [0, 1], [H * W * 3];
  sound: the log spectrogram the sound tower reads, [T * F];
  text:  a bag of words, [V] word counts over the vocabulary of the training captions.
Features are standardized with the training rows' mean and deviation, and the L2 penalty is picked from
L2_GRID on a held-out fifth of the training rows before the final fit on all of them. A representation
that aligns concepts should classify far above these numbers; a world whose raw inputs already name the
concept linearly would make the network's accuracy meaningless.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from absl import logging

from alignment import transfer
from alignment.streams import MODALITIES
from experiments.evaluation.baselines import raw_pixels
from experiments.evaluation.context import EvalContext, labeled_rows
from experiments.evaluation.rows import RAW_PROBES, Row

RAW_INPUT = "raw input"
L2_GRID = (1e-4, 1e-2, 1.0)
HOLDOUT_FRACTION = 0.2


class NoProbeRows(ValueError):
    """The data set lacks labeled validation or test rows of some modality (e.g. COCO has no sound)."""


def bag_of_words(captions: np.ndarray, vocabulary: dict[str, int]) -> np.ndarray:
    """str [N] captions -> float32 [N, V] word counts; words outside the vocabulary are dropped."""
    counts = np.zeros((len(captions), len(vocabulary)), np.float32)
    for i, caption in enumerate(captions):
        for word in str(caption).split():
            if word in vocabulary:
                counts[i, vocabulary[word]] += 1.0
    return counts


def raw_features(
    arrays: dict[str, np.ndarray], vocabulary: dict[str, int]
) -> dict[str, np.ndarray]:
    """{modality: [N, D]} raw inputs of every row of a split (see the module docstring)."""
    sound = np.asarray(arrays["sound"], np.float32)
    return {
        "image": raw_pixels(arrays["image"]),
        "sound": sound.reshape(len(sound), -1),
        "text": bag_of_words(arrays["caption"], vocabulary),
    }


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def _row_space(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in the span of the training rows, when it is smaller than the feature space.

    An L2-penalized linear classifier's weights lie in that span (the representer theorem) and the
    projection keeps every row's norm, so every fit and prediction is unchanged, only far cheaper on wide raw inputs
    (a 64 x 64 image has 12,288 pixels; a few hundred rows span far fewer directions).
    """
    if train.shape[1] <= train.shape[0]:
        return train, test
    _, _, basis = np.linalg.svd(train, full_matrices=False)
    projected = test @ basis.T
    # The classifier normalizes rows, so a test row keeps its full norm in one more coordinate (the
    # part outside the span, where every training row, and so every weight, is 0).
    outside = np.sqrt(np.maximum(np.sum(test**2, axis=1) - np.sum(projected**2, axis=1), 0.0))
    train = np.concatenate([train @ basis.T, np.zeros((len(train), 1))], axis=1)
    return train, np.concatenate([projected, outside[:, None]], axis=1)


def probe_accuracy(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
    num_classes: int,
) -> tuple[float, float]:  # fmt: skip
    """Top-1 test accuracy of a standardized linear probe and the L2 penalty picked for it.

    Args:
      train, test: [N, D] and [M, D] raw features.
      train_labels, test_labels: int [N] and [M] in [0, num_classes).
      num_classes: C.
    """
    train, test = _standardize(np.asarray(train, np.float64), np.asarray(test, np.float64))
    train, test = _row_space(train, test)
    order = np.random.default_rng(0).permutation(len(train))
    held, fit = np.split(order, [int(HOLDOUT_FRACTION * len(train))])

    def held_out(l2: float) -> float:
        classifier = transfer.fit_linear_classifier(
            train[fit], train_labels[fit], num_classes, l2=l2
        )
        return classifier.accuracy(train[held], train_labels[held])

    l2 = max(L2_GRID, key=held_out)
    classifier = transfer.fit_linear_classifier(train, train_labels, num_classes, l2=l2)
    return classifier.accuracy(test, test_labels), l2


def raw_input_probes(train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> dict[str, Any]:
    """Raw-input probe accuracies, trained on `train`'s labeled rows and tested on `test`'s (split
    arrays with image, sound, caption, label and has_* features).

    Returns:
      {"accuracy": {modality: top-1}, "l2": {modality: penalty}, "num_train": {modality: N},
       "num_test": {modality: M}, "num_classes": C, "chance": 1 / C, "seconds": wall time}.
    Raises NoProbeRows without labeled rows of every modality in both.
    """
    start = time.perf_counter()
    rows = {"train": labeled_rows(train), "test": labeled_rows(test)}
    if not all(len(r) for split in rows.values() for r in split.values()):
        raise NoProbeRows(
            "raw-input probes need labeled validation and test rows of every modality"
        )
    words = sorted({w for c in train["caption"][rows["train"]["text"]] for w in str(c).split()})
    vocabulary = {w: i for i, w in enumerate(words)}
    train_x, test_x = raw_features(train, vocabulary), raw_features(test, vocabulary)
    num_classes = int(max(train["label"].max(), test["label"].max())) + 1
    result: dict[str, Any] = {"accuracy": {}, "l2": {}, "num_train": {}, "num_test": {}}
    for m in MODALITIES:
        tr, te = rows["train"][m], rows["test"][m]
        accuracy, l2 = probe_accuracy(
            train_x[m][tr], train["label"][tr], test_x[m][te], test["label"][te], num_classes
        )
        result["accuracy"][m], result["l2"][m] = accuracy, l2
        result["num_train"][m], result["num_test"][m] = len(tr), len(te)
    result.update(num_classes=num_classes, chance=1.0 / num_classes)
    result["seconds"] = time.perf_counter() - start
    return result


def evaluate(context: EvalContext) -> list[Row]:
    """One RAW_PROBES row ("raw input": raw_input_probes' dict), trained on the validation split; none,
    with a log line saying why, when the data set lacks the labeled rows."""
    try:
        if not context.has_split("validation"):
            raise NoProbeRows("raw-input probes train on the validation split, and there is none")
        probes = raw_input_probes(context.split("validation"), context.split("test"))
    except NoProbeRows as e:
        logging.info("evaluate: raw-input probes skipped: %s", e)
        return []
    return [Row(RAW_PROBES, RAW_INPUT, probes)]
