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
    figure = units.unit_grid_figure(
        [int(u) for u in top],
        acts,
        test["image"][rows["image"]],
        test["sound"][rows["sound"]],
        list(test["caption"][rows["text"]]),
        num_items=min(4, k),
        unit_titles=[f"unit {u}: {names[concepts[u]]} ({scores[u]:.2f})" for u in top],
    )
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
