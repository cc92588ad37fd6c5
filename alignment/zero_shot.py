"""Classification sets (ESC-50, UrbanSound8K) from the shared representation.

Zero-shot: each class is embedded from sentences naming it (one per prompt template); a clip takes
the class whose embedding is most cosine-similar to its own. Linear probe: leave-one-fold-out, a
softmax classifier (alignment.transfer.fit_linear_classifier) trained on the other folds' clips.
Accuracies are reported overall and per fold; the sets' customary figure is the mean over folds
(UrbanSound8K's folds differ in size, so it differs from the overall one).
"""

from __future__ import annotations

import numpy as np

from alignment.retrieval import l2_normalize
from alignment.transfer import fit_linear_classifier


def _unit(x: np.ndarray) -> np.ndarray:
    return l2_normalize(np.asarray(x, dtype=np.float64))


def ensemble_class_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """[C, T, D] embeddings of T prompts per class -> float64 [C, D] unit class embeddings.

    Each prompt embedding is L2-normalized, the T of a class averaged, the mean renormalized, so every
    template weighs the same whatever its embedding's norm.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 3 or 0 in embeddings.shape:
        raise ValueError(f"expected [C, T, D] prompt embeddings, got shape {embeddings.shape}")
    return _unit(_unit(embeddings).mean(axis=1))


def zero_shot_predictions(embeddings: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
    """int64 [N]: argmax over classes of cosine(embeddings [N, D], class_embeddings [C, D])."""
    x, c = np.asarray(embeddings), np.asarray(class_embeddings)
    if x.ndim != 2 or c.ndim != 2 or x.shape[1] != c.shape[1]:
        raise ValueError(f"expected [N, D] and [C, D], got {x.shape} and {c.shape}")
    return np.argmax(_unit(x) @ _unit(c).T, axis=1)


def accuracy_by_fold(
    predictions: np.ndarray, targets: np.ndarray, folds: np.ndarray | None = None
) -> dict:
    """{"accuracy": over all clips, "per_fold": {fold: accuracy}, "fold_mean": mean of per_fold}.

    Without folds, per_fold is empty and fold_mean equals accuracy.
    """
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.shape != targets.shape or predictions.ndim != 1 or predictions.size == 0:
        raise ValueError(f"predictions {predictions.shape} and targets {targets.shape} differ")
    correct = predictions == targets
    per_fold: dict[int, float] = {}
    if folds is not None:
        folds = np.asarray(folds)
        if folds.shape != targets.shape:
            raise ValueError(f"folds {folds.shape} and targets {targets.shape} differ")
        per_fold = {int(f): float(np.mean(correct[folds == f])) for f in np.unique(folds)}
    overall = float(np.mean(correct))
    fold_mean = float(np.mean(list(per_fold.values()))) if per_fold else overall
    return {"accuracy": overall, "per_fold": per_fold, "fold_mean": fold_mean}


def zero_shot_accuracy(
    embeddings: np.ndarray,
    class_embeddings: np.ndarray,
    targets: np.ndarray,
    folds: np.ndarray | None = None,
) -> dict:
    """Zero-shot accuracy of clips [N, D] with int targets [N] against class embeddings [C, D]
    (see accuracy_by_fold for the result)."""
    return accuracy_by_fold(zero_shot_predictions(embeddings, class_embeddings), targets, folds)


def fold_linear_probe(
    features: np.ndarray,
    targets: np.ndarray,
    folds: np.ndarray,
    num_classes: int,
    *,
    l2: float = 1e-4,
    max_steps: int = 300,
) -> dict:
    """Leave-one-fold-out linear probe: for each fold, a classifier fit on the others, scored on it.

    Args:
      features: [N, D]; targets: int [N] in [0, num_classes); folds: int [N], at least two distinct.
      l2, max_steps: as in alignment.transfer.fit_linear_classifier.

    Returns:
      As accuracy_by_fold, from every clip's held-out prediction.
    """
    features, targets, folds = np.asarray(features), np.asarray(targets), np.asarray(folds)
    names = np.unique(folds)
    if names.size < 2:
        raise ValueError(
            f"a leave-one-fold-out probe needs two folds or more, got {names.tolist()}"
        )
    predictions = np.empty(targets.shape, dtype=np.int64)
    for fold in names:
        held_out = folds == fold
        classifier = fit_linear_classifier(
            features[~held_out], targets[~held_out], num_classes, l2=l2, max_steps=max_steps
        )
        predictions[held_out] = classifier.predict(features[held_out])
    return accuracy_by_fold(predictions, targets, folds)
