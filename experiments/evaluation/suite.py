"""The evaluation suite: every evaluator is a function of an EvalContext returning Rows, registered by
name. evaluate, the demo and training's validation run it; the report writer renders its rows.

    rows = run(context, ["baselines", "retrieval", "transfer", "units", "raw_probes"])
    markdown = reports.tables.write_rows(rows, out_dir)    # results.json, tables.md, plots

A new evaluator is one module with `evaluate(context) -> list[Row]` plus one line in REGISTRY.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from absl import logging

from experiments.evaluation import (
    baselines,
    raw_probes,
    retrieval,
    transfer,
    units,
    validation,
)
from experiments.evaluation.context import EvalContext
from experiments.evaluation.rows import Row

Evaluator = Callable[[EvalContext], list[Row]]

REGISTRY: dict[str, Evaluator] = {
    "baselines": baselines.evaluate,
    "retrieval": retrieval.evaluate,
    "transfer": transfer.evaluate,
    "units": units.evaluate,
    "raw_probes": raw_probes.evaluate,
    "validation": validation.evaluate,
}
# The evaluators of a trained run (Tables 1-3, hidden units); the others score the data set itself.
TRAINED = ("retrieval", "transfer", "units")


def run(context: EvalContext, names: Sequence[str]) -> list[Row]:
    """The rows of the named evaluators, in order, each timed in a log line."""
    rows: list[Row] = []
    for name in names:
        if name not in REGISTRY:
            raise ValueError(f"unknown evaluator {name!r}; expected one of {sorted(REGISTRY)}")
        start = time.perf_counter()
        rows.extend(REGISTRY[name](context))
        logging.info("evaluate: %s done in %.1fs", name, time.perf_counter() - start)
    return rows
