"""Hidden units of the shared layer: how many fc7 units are concept detectors in every modality, against
a shuffled-label null, and a grid of the items that activate the most selective ones (units.png)."""

from __future__ import annotations

import numpy as np

from alignment import units
from data_pipelines import paths
from experiments.evaluation.context import EvalContext, labeled_rows
from experiments.evaluation.retrieval import method_name
from experiments.evaluation.rows import RESULTS, Row

UNIT_LAYER = "fc7"
UNIT_TOP_K = 10
UNIT_THRESHOLD = 0.5
GRID_UNITS = 6
UNIT_GRID_FILE = "units.png"


def evaluate(context: EvalContext) -> list[Row]:
    """One RESULTS row for the run: {"units": {"layer", "k", "threshold", "selective_fraction",
    "shuffled_fraction", "top_units", "grid"} or None without labeled test rows of every modality}."""
    test = context.split("test")
    rows = labeled_rows(test)
    name = method_name(context.config)
    if not all(len(r) for r in rows.values()):
        return [Row(RESULTS, name, {"units": None})]
    reps = context.embeddings("test", [UNIT_LAYER])
    acts = {m: reps[m][UNIT_LAYER][r] for m, r in rows.items()}
    labels = {m: test["label"][r] for m, r in rows.items()}
    names = context.label_names
    k = min(UNIT_TOP_K, *(len(r) for r in rows.values()))
    scores, concepts = units.unit_selectivity(acts, labels, k)
    # Units silent on some modality (dead ReLUs) tie on every item: keep them out of the grid.
    alive = np.min([a.std(axis=0) for a in acts.values()], axis=0) > 0
    top = units.most_selective_units(np.where(alive, scores, -1.0), GRID_UNITS)
    images, sounds, captions = _grid_inputs(context, rows, [int(u) for u in top], acts, min(4, k))
    titles = [f"unit {u}: {names[concepts[u]]} ({scores[u]:.2f})" for u in top]
    figure = units.unit_grid_figure(images, sounds, captions, titles)
    out_dir = paths.as_path(context.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / UNIT_GRID_FILE).open("wb") as f:
        figure.savefig(f, format="png", dpi=90)
    fields = {
        "layer": UNIT_LAYER,
        "k": k,
        "threshold": UNIT_THRESHOLD,
        "selective_fraction": float(np.mean(scores > UNIT_THRESHOLD)),
        "shuffled_fraction": units.shuffled_selective_fraction(acts, labels, k, UNIT_THRESHOLD),
        "top_units": [
            {"unit": int(u), "score": float(scores[u]), "concept": names[concepts[u]]} for u in top
        ],
        "grid": UNIT_GRID_FILE,
    }
    return [Row(RESULTS, name, {"units": fields})]


def _grid_inputs(
    context: EvalContext,
    rows: dict[str, np.ndarray],
    top: list[int],
    acts: dict[str, np.ndarray],
    num_items: int,
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(images [U, n, H, W, 3], spectrograms [U, n, T, F], captions [U][n]) of the test items that
    activate each unit most (acts[m] holds the test rows rows[m]): only these rows are read."""
    items = {m: rows[m][i] for m, i in units.grid_items(top, acts, num_items).items()}
    shown = {}
    for m in ("image", "sound"):
        values = context.read("test", items[m].ravel(), [m])[m]
        shown[m] = values.reshape(items[m].shape + values.shape[1:])
    captions = context.split("test")["caption"][items["text"]]
    return shown["image"], shown["sound"], captions.tolist()
