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
    """{"split", "rows": the split rows used (ascending), "positions": {(a, b): positions in rows}}
    (see the module docstring)."""
    split = "validation" if context.has_split("validation") else "test"
    metadata = context.split(split)
    chosen = {}
    for a, b in DIRECTIONS:
        both = np.flatnonzero(metadata[f"has_{a}"] & metadata[f"has_{b}"])[
            : context.config.eval_items
        ]
        if len(both) >= 2:
            chosen[(a, b)] = both
    if not chosen:
        raise ValueError(
            f"the {split} split has no two rows sharing two modalities to validate on: add a "
            "validation.jsonl, or set --config.eval_every=0"
        )
    rows = np.unique(np.concatenate(list(chosen.values())))
    return {
        "split": split,
        "rows": rows,
        "positions": {d: np.searchsorted(rows, r) for d, r in chosen.items()},
    }


def evaluate(context: EvalContext) -> list[Row]:
    """One VALIDATION row: {"val/<a>_<b>_median_rank" per direction, SELECTION_METRIC, DEAD_UNITS}.

    The chosen rows are read again (by index) at every validation, so training holds none of them."""
    if _MEMO not in context.memo:
        context.memo[_MEMO] = validation_items(context)
    items = context.memo[_MEMO]
    config = context.config
    layer = config.eval_layers[0]
    modalities = sorted({m for direction in items["positions"] for m in direction})
    embedded = context.embed_rows(items["split"], items["rows"], {m: [layer] for m in modalities})
    reps = {m: embedded[m][layer] for m in modalities}
    scores = {}
    for (a, b), positions in items["positions"].items():
        chunk = min(config.eval_chunk, len(positions))
        scores[f"val/{a[:3]}_{b[:3]}_median_rank"] = float(
            retrieval.paper_median_rank(reps[a][positions], reps[b][positions], chunk)
        )
    scores[SELECTION_METRIC] = float(np.mean(list(scores.values())))
    metadata = context.split(items["split"])
    present = {m: metadata[f"has_{m}"][items["rows"]] for m in modalities}
    scores[DEAD_UNITS] = units.dead_unit_fraction(reps, present)
    return [Row(VALIDATION, items["split"], scores)]
