"""Training's validation check: median rank of the true match per direction on held-out items, their
mean (the model-selection score) and the fraction of never-active units.

Items: the first config.eval_items rows of the validation split (else the test split) holding both
modalities of a direction. Held-out train rows hold pairs, not triplets, so each direction uses the rows
that have both of its modalities; a direction without such rows (text->sound on pairs) is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alignment import retrieval, units
from experiments.evaluation.context import EvalContext
from experiments.evaluation.rows import VALIDATION, Row

DIRECTIONS = (("image", "sound"), ("image", "text"), ("text", "sound"))
SELECTION_METRIC = "val/mean_median_rank"
DEAD_UNITS = "val/dead_units"
_MEMO = "validation_items"


def validation_items(context: EvalContext) -> dict[str, Any]:
    """{"split", "arrays": the rows used, "rows": {(a, b): positions in arrays}} (see the module doc)."""
    split = "validation" if context.has_split("validation") else "test"
    arrays = context.split(split)
    rows = {}
    for a, b in DIRECTIONS:
        both = np.flatnonzero(arrays[f"has_{a}"] & arrays[f"has_{b}"])[: context.config.eval_items]
        if len(both) >= 2:
            rows[(a, b)] = both
    if not rows:
        raise ValueError(
            f"the {split} split has no two rows sharing two modalities to validate on: add a "
            "validation.jsonl, or set --config.eval_every=0"
        )
    keep = np.unique(np.concatenate(list(rows.values())))
    return {
        "split": split,
        "arrays": {k: v[keep] for k, v in arrays.items()},
        "rows": {d: np.searchsorted(keep, r) for d, r in rows.items()},
    }


def evaluate(context: EvalContext) -> list[Row]:
    """One VALIDATION row: {"val/<a>_<b>_median_rank" per direction, SELECTION_METRIC, DEAD_UNITS}."""
    if _MEMO not in context.memo:
        context.memo[_MEMO] = validation_items(context)
    items = context.memo[_MEMO]
    config = context.config
    layer = config.eval_layers[0]
    arrays = items["arrays"]
    modalities = sorted({m for direction in items["rows"] for m in direction})
    reps = {m: context.embed(arrays, m, [layer])[layer] for m in modalities}
    scores = {}
    for (a, b), rows in items["rows"].items():
        chunk = min(config.eval_chunk, len(rows))
        scores[f"val/{a[:3]}_{b[:3]}_median_rank"] = float(
            retrieval.paper_median_rank(reps[a][rows], reps[b][rows], chunk)
        )
    scores[SELECTION_METRIC] = float(np.mean(list(scores.values())))
    present = {m: arrays[f"has_{m}"] for m in modalities}
    scores[DEAD_UNITS] = units.dead_unit_fraction(reps, present)
    return [Row(VALIDATION, items["split"], scores)]
