"""The one schema every evaluator returns, and the tables rows belong to."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

RESULTS = "results"  # results.json: one entry per method ("Both", "CCA", ...)
RAW_PROBES = "raw_probes"  # raw_probes.json: linear probes on raw inputs
VALIDATION = "validation"  # training's validation scores
RANKS = "ranks"  # a method's rank of the true match for every test query: {"a->b": [chunks, chunk]}


@dataclasses.dataclass(frozen=True)
class Row:
    """One evaluator's output for one entry of one table.

    table: RESULTS, RAW_PROBES, VALIDATION or RANKS. name: the entry (a method such as "Both" or "CCA", or the
    table's single entry). fields: JSON-able values merged into the entry, so the rows of several
    evaluators (retrieval, transfer, units of one trained run) make one entry.
    """

    table: str
    name: str
    fields: Mapping[str, Any]
