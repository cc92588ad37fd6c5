"""Trained rows against the baselines on the same test queries: is a difference in median rank more than
the draw of the test items?

Each trained row (an entry with an "objective") is compared with each linear baseline in every direction
by alignment.retrieval.median_rank_difference on their RANKS rows (evaluated before this evaluator): the
difference of their median ranks and its 90% paired bootstrap interval. On a few hundred test items
two models that both know only the class differ by a rank or two by chance (their median is 15.5 +- 0.8
among 30 items of a class); the interval says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alignment import retrieval
from experiments.evaluation.baselines import METHOD_ROWS
from experiments.evaluation.context import EvalContext
from experiments.evaluation.rows import RANKS, RESULTS, Row

LEVEL = 0.9
RESAMPLES = 2000


def verdict(low: float, high: float) -> str:
    """ "wins" if the interval of (trained - baseline) lies below 0, "loses" if above, else "within"."""
    if high < 0:
        return "wins"
    if low > 0:
        return "loses"
    return "within"


def compare(
    ranks_by_row: Mapping[str, Mapping[str, np.ndarray]],
    trained: Sequence[str],
    baselines: Sequence[str],
    seed: int = 0,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{trained: {baseline: {"a->b": {"difference", "low", "high", "verdict"}}}} for the rows present.

    ranks_by_row: row name -> {"a->b": [chunks, chunk] ranks} (the RANKS rows of the evaluators).
    Directions are those both rows have; the draws are seeded, so a report is reproducible.
    """
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for name in trained:
        if name not in ranks_by_row:
            continue
        for baseline in baselines:
            if baseline not in ranks_by_row:
                continue
            rng = np.random.default_rng(seed)
            ours, theirs = ranks_by_row[name], ranks_by_row[baseline]
            cells = {}
            for direction in (d for d in ours if d in theirs):
                difference, low, high = retrieval.median_rank_difference(
                    ours[direction], theirs[direction], rng, RESAMPLES, LEVEL
                )
                cells[direction] = {
                    "difference": difference,
                    "low": low,
                    "high": high,
                    "verdict": verdict(low, high),
                }
            out.setdefault(name, {})[baseline] = cells
    return out


def evaluate(context: EvalContext) -> list[Row]:
    """A RESULTS row {"versus": {baseline: {"a->b": {"difference", "low", "high", "verdict"}}}} for each
    trained row of the rows evaluated before (context.rows) that has RANKS beside a linear baseline's."""
    ranks = {row.name: row.fields for row in context.rows if row.table == RANKS}
    trained = [
        row.name for row in context.rows if row.table == RESULTS and "objective" in row.fields
    ]
    cells = compare(ranks, list(dict.fromkeys(trained)), list(METHOD_ROWS.values()))
    return [Row(RESULTS, name, {"versus": by_baseline}) for name, by_baseline in cells.items()]
