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

Memory: a probe is fit on the first labeled validation rows of its modality whose float64 features fit
in MAX_TRAIN_BYTES (every row of the bundled world's splits; about 430 frames of 227 x 227), held while
it is fit; the test rows are read and scored a batch at a time, so what grows with the test split is its
metadata alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from absl import logging

from alignment import transfer
from alignment.streams import MODALITIES
from experiments.evaluation.baselines import raw_pixels
from experiments.evaluation.context import EvalContext, labeled_rows
from experiments.evaluation.rows import RAW_PROBES, Row
from experiments.runtime.embedding import eval_batch_size

RAW_INPUT = "raw input"
L2_GRID = (1e-4, 1e-2, 1.0)
HOLDOUT_FRACTION = 0.2
# The float64 training features a probe is fit on, at most: a bound on the raw inputs held at once.
MAX_TRAIN_BYTES = 512 << 20
TRAIN_SPLIT, TEST_SPLIT = "validation", "test"


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


def raw_batches(
    context: EvalContext, split: str, rows: np.ndarray, modality: str, vocabulary: dict[str, int]
) -> Iterator[np.ndarray]:
    """[n, D] raw inputs of `modality` (see the module docstring) of the given split rows, in order,
    eval_batch_size() rows at a time."""
    if modality == "text":
        captions = context.split(split)["caption"]
        size = eval_batch_size()
        for start in range(0, len(rows), size):
            yield bag_of_words(captions[rows[start : start + size]], vocabulary)
        return
    for batch in context.batches(split, rows, [modality]):
        values = batch[modality][: np.count_nonzero(batch["mask"])]
        yield raw_pixels(values) if modality == "image" else values.reshape(len(values), -1)


@dataclasses.dataclass(frozen=True)
class _Coordinates:
    """Raw features -> standardized with the training rows' mean and deviation, then, when the training
    rows span fewer directions than the features have, coordinates in that span (_row_space)."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    basis: np.ndarray | None  # [N, D] orthonormal rows spanning the standardized training rows

    @classmethod
    def fit(cls, train: np.ndarray) -> tuple[_Coordinates, np.ndarray]:
        """(the map, the training rows' coordinates) for training features [N, D]."""
        train = np.asarray(train, np.float64)
        mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
        standardized = (train - mean) / std
        if standardized.shape[1] <= standardized.shape[0]:
            return cls(mean, std, None), standardized
        _, _, basis = np.linalg.svd(standardized, full_matrices=False)
        # Training rows lie in the span: their coordinate outside it (see __call__) is 0.
        inside = np.concatenate([standardized @ basis.T, np.zeros((len(standardized), 1))], axis=1)
        return cls(mean, std, basis), inside

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """[M, D] raw features -> [M, D] or [M, N + 1] coordinates."""
        standardized = (np.asarray(x, np.float64) - self.mean) / self.std
        if self.basis is None:
            return standardized
        return _row_space(standardized, self.basis)


def _row_space(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Coordinates in the span of the training rows (basis: [N, D] orthonormal rows), plus the norm of
    the part outside it.

    An L2-penalized linear classifier's weights lie in that span (the representer theorem) and the
    projection keeps every row's norm, so every fit and prediction is unchanged, only far cheaper on wide
    raw inputs (a 64 x 64 image has 12,288 pixels; a few hundred rows span far fewer directions). The
    classifier normalizes rows, so a row keeps its full norm in one more coordinate (the part outside the
    span, where every training row, and so every weight, is 0).
    """
    projected = x @ basis.T
    outside = np.sqrt(np.maximum(np.sum(x**2, axis=1) - np.sum(projected**2, axis=1), 0.0))
    return np.concatenate([projected, outside[:, None]], axis=1)


@dataclasses.dataclass(frozen=True)
class Probe:
    """A linear probe on raw features: its coordinates, classifier and the L2 penalty picked for it."""

    coordinates: _Coordinates
    classifier: transfer.LinearClassifier
    l2: float

    def correct(self, features: np.ndarray, labels: np.ndarray) -> int:
        """How many of [M, D] raw features it classifies as their int [M] labels."""
        predictions = self.classifier.predict(self.coordinates(features))
        return int(np.count_nonzero(predictions == np.asarray(labels)))


def fit_probe(train: np.ndarray, labels: np.ndarray, num_classes: int) -> Probe:
    """A standardized linear probe of [N, D] raw features with int [N] labels in [0, num_classes): the
    L2 penalty is picked from L2_GRID on a held-out fifth of the rows, then fit on all of them."""
    coordinates, train = _Coordinates.fit(train)
    order = np.random.default_rng(0).permutation(len(train))
    held, fit = np.split(order, [int(HOLDOUT_FRACTION * len(train))])

    def held_out(l2: float) -> float:
        classifier = transfer.fit_linear_classifier(train[fit], labels[fit], num_classes, l2=l2)
        return classifier.accuracy(train[held], labels[held])

    l2 = max(L2_GRID, key=held_out)
    return Probe(coordinates, transfer.fit_linear_classifier(train, labels, num_classes, l2=l2), l2)


def probe_accuracy(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
    num_classes: int,
) -> tuple[float, float]:  # fmt: skip
    """Top-1 test accuracy of a probe fit on `train` (fit_probe) and its L2 penalty.

    Args:
      train, test: [N, D] and [M, D] raw features.
      train_labels, test_labels: int [N] and [M] in [0, num_classes).
      num_classes: C.
    """
    probe = fit_probe(train, np.asarray(train_labels), num_classes)
    return probe.correct(test, test_labels) / len(test), probe.l2


def raw_input_probes(
    context: EvalContext, train_split: str = TRAIN_SPLIT, test_split: str = TEST_SPLIT
) -> dict[str, Any]:
    """Raw-input probe accuracies, fit on the labeled rows of `train_split` (as many of each modality
    as MAX_TRAIN_BYTES holds) and tested on every labeled row of `test_split`, read a batch at a time.

    Returns:
      {"accuracy": {modality: top-1}, "l2": {modality: penalty}, "num_train": {modality: N},
       "num_test": {modality: M}, "num_classes": C, "chance": 1 / C, "seconds": wall time}.
    Raises NoProbeRows without labeled rows of every modality in both.
    """
    start = time.perf_counter()
    train, test = context.split(train_split), context.split(test_split)
    rows = {"train": labeled_rows(train), "test": labeled_rows(test)}
    if not all(len(r) for split in rows.values() for r in split.values()):
        raise NoProbeRows(
            "raw-input probes need labeled validation and test rows of every modality"
        )
    words = sorted({w for c in train["caption"][rows["train"]["text"]] for w in str(c).split()})
    vocabulary = {w: i for i, w in enumerate(words)}
    for m, r in rows["train"].items():
        width = len(vocabulary) if m == "text" else np.prod(context.builder.info.features[m].shape)
        rows["train"][m] = r[: max(1, MAX_TRAIN_BYTES // (8 * int(width)))]
    num_classes = int(max(train["label"].max(), test["label"].max())) + 1
    result: dict[str, Any] = {"accuracy": {}, "l2": {}, "num_train": {}, "num_test": {}}
    for m in MODALITIES:
        tr, te = rows["train"][m], rows["test"][m]
        features = np.concatenate(list(raw_batches(context, train_split, tr, m, vocabulary)))
        probe = fit_probe(features, train["label"][tr], num_classes)
        del features  # the test rows are scored with only the probe held
        correct, done = 0, 0
        for x in raw_batches(context, test_split, te, m, vocabulary):
            correct += probe.correct(x, test["label"][te[done : done + len(x)]])
            done += len(x)
        result["accuracy"][m], result["l2"][m] = correct / len(te), probe.l2
        result["num_train"][m], result["num_test"][m] = len(tr), len(te)
    result.update(num_classes=num_classes, chance=1.0 / num_classes)
    result["seconds"] = time.perf_counter() - start
    return result


def evaluate(context: EvalContext) -> list[Row]:
    """One RAW_PROBES row ("raw input": raw_input_probes' dict), trained on the validation split; none,
    with a log line saying why, when the data set lacks the labeled rows."""
    try:
        if not context.has_split(TRAIN_SPLIT):
            raise NoProbeRows("raw-input probes train on the validation split, and there is none")
        probes = raw_input_probes(context)
    except NoProbeRows as e:
        logging.info("evaluate: raw-input probes skipped: %s", e)
        return []
    return [Row(RAW_PROBES, RAW_INPUT, probes)]
