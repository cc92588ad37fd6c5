"""Zero-shot classifier transfer: a linear classifier trained on one modality, tested on every modality.

A multinomial logistic regression (softmax over classes, L2 penalty, L-BFGS in float64) is fit on the
L2-normalized representations of one modality's labeled training items and scored (top-1 accuracy) on each
modality's test items. If the representation is aligned, a classifier trained on images also reads sounds
and sentences.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from alignment.retrieval import l2_normalize


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected [N, D] features, got shape {x.shape}")
    return l2_normalize(x)


@dataclass(frozen=True)
class LinearClassifier:
    """Softmax classifier on L2-normalized features."""

    weights: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]

    def logits(self, features: np.ndarray) -> np.ndarray:
        """[N, D] raw features -> [N, C] class scores."""
        return _unit_rows(features) @ self.weights + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """[N, D] raw features -> int64 [N] predicted classes."""
        return np.argmax(self.logits(features), axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """Top-1 accuracy on [N, D] features with int [N] labels."""
        return float(np.mean(self.predict(features) == np.asarray(labels)))


def fit_linear_classifier(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    l2: float = 1e-4,
    max_steps: int = 300,
) -> LinearClassifier:
    """Multinomial logistic regression by L-BFGS on L2-normalized features.

    Args:
      features: [N, D] training representations (any scale; rows are L2-normalized).
      labels: int [N] in [0, num_classes).
      num_classes: C.
      l2: weight penalty (l2 / 2) * ||W||^2 added to the mean cross-entropy; the bias is not penalized.
      max_steps: L-BFGS iterations.

    Returns:
      LinearClassifier with weights [D, C] and bias [C].
    """
    x = _unit_rows(features)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (x.shape[0],) or labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must be [N] ints in [0, {num_classes})")
    n, d = x.shape
    targets = np.eye(num_classes)[labels]

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = flat[: d * num_classes].reshape(d, num_classes), flat[d * num_classes :]
        logits = x @ weights + bias
        log_probs = logits - special.logsumexp(logits, axis=1, keepdims=True)
        loss = -np.sum(targets * log_probs) / n + 0.5 * l2 * np.sum(weights**2)
        residual = (np.exp(log_probs) - targets) / n
        grad = np.concatenate([(x.T @ residual + l2 * weights).ravel(), residual.sum(axis=0)])
        return loss, grad

    result = optimize.minimize(
        loss_and_grad,
        np.zeros(d * num_classes + num_classes),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_steps},
    )
    flat = result.x
    return LinearClassifier(
        flat[: d * num_classes].reshape(d, num_classes), flat[d * num_classes :]
    )


@dataclass(frozen=True)
class TransferResult:
    """Top-1 accuracies of classifiers trained on each modality (rows) and tested on each (columns)."""

    modalities: tuple[str, ...]
    accuracy: (
        np.ndarray
    )  # [M, M]: accuracy[i, j] = trained on modalities[i], tested on modalities[j]
    chance: float  # 1 / num_classes
    majority: np.ndarray  # [M]: frequency of the most common test label of each test modality

    def table(self) -> dict[str, dict[str, float]]:
        """Rows keyed by training modality, plus "chance" and "majority" rows; columns by test modality."""
        rows = {
            train: dict(zip(self.modalities, map(float, self.accuracy[i]), strict=True))
            for i, train in enumerate(self.modalities)
        }
        rows["chance"] = dict.fromkeys(self.modalities, self.chance)
        rows["majority"] = dict(zip(self.modalities, map(float, self.majority), strict=True))
        return rows


def transfer_matrix(
    train: Mapping[str, tuple[np.ndarray, np.ndarray]],
    test: Mapping[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    *,
    l2: float = 1e-4,
    max_steps: int = 300,
) -> TransferResult:
    """The zero-shot transfer matrix.

    Args:
      train: modality -> (features [N_m, D], labels int [N_m]) of labeled training items.
      test: modality -> (features [M_m, D], labels int [M_m]) of test items; the same modalities as train,
        and features of the same width D (the shared representation).
      num_classes: C; the chance rate is 1 / C.
      l2, max_steps: as in fit_linear_classifier.

    Returns:
      TransferResult over the modalities in the order of `train`.
    """
    modalities = tuple(train)
    if set(test) != set(modalities):
        raise ValueError(f"train modalities {modalities} and test modalities {tuple(test)} differ")
    accuracy = np.zeros((len(modalities), len(modalities)))
    for i, source in enumerate(modalities):
        classifier = fit_linear_classifier(*train[source], num_classes, l2=l2, max_steps=max_steps)
        for j, target in enumerate(modalities):
            accuracy[i, j] = classifier.accuracy(*test[target])
    majority = np.array(
        [
            np.bincount(np.asarray(test[m][1], dtype=np.int64), minlength=num_classes).max()
            / len(test[m][1])
            for m in modalities
        ]
    )
    return TransferResult(modalities, accuracy, 1.0 / num_classes, majority)
