"""Hidden-unit analysis: which test items of each modality activate a shared unit most, and whether they agree.

Concept selectivity of a unit u, with top-k items per modality: for each concept c and modality m let
f_m(u, c) be the fraction of u's k most activating test items of modality m whose label is c. The unit's
score is max_c min_m f_m(u, c), its concept the maximizing c (lowest index on ties). A unit is
concept-selective when its score exceeds a threshold; at the default 0.5 that means one concept is the
strict majority of its top-k items in every modality. The null is the same fraction with labels permuted
within each modality, which keeps the class frequencies and breaks the link between items and labels.
"""

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

GRID_MODALITIES = ("image", "sound", "text")


def dead_unit_fraction(
    activations: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray]
) -> float:
    """Fraction of units never above zero on any present item of any modality.

    Args:
      activations: {modality: [N, D]} one layer's activations (rows of absent items are ignored).
      present: {modality: bool [N]} which rows hold that modality.
    """
    active = [
        np.any(activations[m][present[m]] > 0, axis=0) for m in activations if present[m].any()
    ]
    return float(1.0 - np.mean(np.logical_or.reduce(active)))


def top_items(activations: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k most activating items of each unit, most activating first.

    Args:
      activations: [N, U] activations of N items on U units.
      k: items per unit (at most N).

    Returns:
      int64 [U, k].
    """
    acts = np.asarray(activations).T
    if not 1 <= k <= acts.shape[1]:
        raise ValueError(f"k must be in [1, {acts.shape[1]}], got {k}")
    part = np.argpartition(-acts, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(acts, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def _label_fractions(top: np.ndarray, labels: np.ndarray, num_concepts: int) -> np.ndarray:
    """[U, k] item indices -> [U, num_concepts] fraction of each unit's items with each label."""
    units, k = top.shape
    flat = (np.arange(units)[:, None] * num_concepts + labels[top]).ravel()
    return np.bincount(flat, minlength=units * num_concepts).reshape(units, num_concepts) / k


def _scores(
    tops: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], num_concepts: int
) -> tuple[np.ndarray, np.ndarray]:
    worst = np.min(
        [_label_fractions(tops[m], labels[m], num_concepts) for m in tops], axis=0
    )  # [U, K]
    return worst.max(axis=1), worst.argmax(axis=1)


def _prepare(
    activations_by_modality: Mapping[str, np.ndarray],
    labels_by_modality: Mapping[str, np.ndarray],
    k: int,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    if set(activations_by_modality) != set(labels_by_modality):
        raise ValueError("activations and labels must cover the same modalities")
    labels = {m: np.asarray(labels_by_modality[m], dtype=np.int64) for m in activations_by_modality}
    for m, lab in labels.items():
        if lab.shape != (np.shape(activations_by_modality[m])[0],) or lab.min() < 0:
            raise ValueError(f"{m}: labels must be one non-negative int per item")
    tops = {m: top_items(a, k) for m, a in activations_by_modality.items()}
    return tops, labels, int(max(lab.max() for lab in labels.values())) + 1


def unit_selectivity(
    activations_by_modality: Mapping[str, np.ndarray],
    labels_by_modality: Mapping[str, np.ndarray],
    k: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Concept selectivity of every unit (module docstring).

    Args:
      activations_by_modality: modality -> [N_m, U] activations of its test items (the same U units).
      labels_by_modality: modality -> int [N_m] concept labels in [0, K).
      k: top items per unit and modality.

    Returns:
      (scores float [U] in [0, 1], concepts int64 [U]).
    """
    tops, labels, num_concepts = _prepare(activations_by_modality, labels_by_modality, k)
    return _scores(tops, labels, num_concepts)


def selective_fraction(
    activations_by_modality: Mapping[str, np.ndarray],
    labels_by_modality: Mapping[str, np.ndarray],
    k: int = 10,
    threshold: float = 0.5,
) -> float:
    """Fraction of units whose selectivity score exceeds threshold."""
    scores, _ = unit_selectivity(activations_by_modality, labels_by_modality, k)
    return float(np.mean(scores > threshold))


def shuffled_selective_fraction(
    activations_by_modality: Mapping[str, np.ndarray],
    labels_by_modality: Mapping[str, np.ndarray],
    k: int = 10,
    threshold: float = 0.5,
    num_shuffles: int = 10,
    seed: int = 0,
) -> float:
    """The null of selective_fraction: its mean over num_shuffles within-modality label permutations."""
    tops, labels, num_concepts = _prepare(activations_by_modality, labels_by_modality, k)
    rng = np.random.default_rng(seed)
    fractions = []
    for _ in range(num_shuffles):
        shuffled = {m: rng.permutation(lab) for m, lab in labels.items()}
        scores, _ = _scores(tops, shuffled, num_concepts)
        fractions.append(np.mean(scores > threshold))
    return float(np.mean(fractions))


def most_selective_units(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest-scoring units, best first (lower index on ties)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:count]


def grid_items(
    units: Sequence[int], activations_by_modality: Mapping[str, np.ndarray], num_items: int = 4
) -> dict[str, np.ndarray]:
    """The items of each modality that activate each unit most: what unit_grid_figure shows.

    Args:
      units: unit indices, one row of the grid each.
      activations_by_modality: "image", "sound", "text" -> [N_m, U] activations of that modality's items.
      num_items: items per unit and modality.

    Returns:
      {modality: int64 [len(units), num_items]} item indices, most activating first.
    """
    missing = set(GRID_MODALITIES) - set(activations_by_modality)
    if missing:
        raise ValueError(f"activations missing for {sorted(missing)}")
    return {
        m: top_items(np.asarray(activations_by_modality[m])[:, list(units)], num_items)
        for m in GRID_MODALITIES
    }


def unit_grid_figure(
    images: np.ndarray,
    spectrograms: np.ndarray,
    captions: Sequence[Sequence[str]],
    unit_titles: Sequence[str],
) -> Figure:
    """A picture grid of the items that activate each unit most (grid_items): one row per unit.

    Each row has num_items images, num_items spectrograms (time across, frequency up) and one panel of
    num_items captions, so the figure has len(units) * (2 * num_items + 1) axes.

    Args:
      images: uint8 [units, num_items, H, W, 3]; spectrograms: [units, num_items, T, F]; captions:
        units lists of num_items strings; each row's items most activating first.
      unit_titles: one row label per unit (e.g. "unit 12: dog").

    Returns:
      A matplotlib Figure (not saved, not registered with pyplot).
    """
    num_units, num_items = np.shape(images)[:2]
    shapes = {(len(unit_titles), num_items), np.shape(spectrograms)[:2], np.shape(captions)[:2]}
    if len(shapes) != 1:
        raise ValueError(
            f"{len(unit_titles)} titles for images {np.shape(images)[:2]}, spectrograms "
            f"{np.shape(spectrograms)[:2]} and captions {np.shape(captions)[:2]} (units, items)"
        )
    columns = 2 * num_items + 1
    figure = Figure(figsize=(1.3 * 2 * num_items + 4.0, 1.4 * num_units + 0.4))
    grid = figure.add_gridspec(
        num_units, columns, width_ratios=[1.0] * (2 * num_items) + [3.0], wspace=0.08, hspace=0.25
    )
    for row, title in enumerate(unit_titles):
        for i in range(num_items):
            ax = figure.add_subplot(grid[row, i])
            ax.imshow(images[row][i])
            _bare(ax)
            if i == 0:
                ax.set_ylabel(title, fontsize=8)
            if row == 0 and i == 0:
                ax.set_title("images", fontsize=8, loc="left")
            ax = figure.add_subplot(grid[row, num_items + i])
            ax.imshow(np.asarray(spectrograms[row][i]).T, origin="lower", aspect="auto")
            _bare(ax)
            if row == 0 and i == 0:
                ax.set_title("sounds", fontsize=8, loc="left")
        ax = figure.add_subplot(grid[row, columns - 1])
        lines = [textwrap.shorten(caption, width=60) for caption in captions[row]]
        ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=6, wrap=True)
        ax.set_axis_off()
        if row == 0:
            ax.set_title("sentences", fontsize=8, loc="left")
    return figure


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
