"""The evaluation suite: every evaluator is a function of an EvalContext returning Rows, registered by
name; the config declares which ones run (config.evals.test for evaluate and the demo,
config.evals.validation for training's validation). The report writer renders their rows.

    rows = evaluate(context)                           # config.evals.test, in order
    markdown = reports.tables.write_rows(rows, out_dir)    # results.json, tables.md, plots

A new evaluator is one function `fn(context) -> list[Row]`, one line in REGISTRY and its name in
config.evals.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from absl import logging

from experiments.evaluation import (
    baselines,
    raw_probes,
    retrieval,
    transfer,
    units,
    validation,
    versus,
)
from experiments.evaluation.context import EvalContext
from experiments.evaluation.rows import VALIDATION, Row


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """fn(context) -> rows. per_run: it scores the context's trained run (the demo runs it once for
    each of its runs); else it scores the data set, or the rows evaluated before it (once)."""

    fn: Callable[[EvalContext], list[Row]]
    per_run: bool = True


REGISTRY: dict[str, Evaluator] = {
    "baselines": Evaluator(baselines.evaluate, per_run=False),
    "retrieval": Evaluator(retrieval.evaluate),
    "transfer": Evaluator(transfer.evaluate),
    "units": Evaluator(units.evaluate),
    "raw_probes": Evaluator(raw_probes.evaluate, per_run=False),
    "versus": Evaluator(versus.evaluate, per_run=False),
    "validation": Evaluator(validation.evaluate),
}
# The lists of evaluator names config.evals holds.
EVAL_LISTS = ("test", "validation")


def check_config(config: Any) -> None:
    """Refuses, in one line, a name in config.evals that no evaluator is registered under."""
    for key in EVAL_LISTS:
        unknown = [name for name in config.evals[key] if name not in REGISTRY]
        if unknown:
            raise ValueError(
                f"config.evals.{key}: no evaluator named {', '.join(map(repr, unknown))}; "
                f"expected names from {sorted(REGISTRY)}"
            )


def per_run(names: Sequence[str]) -> list[str]:
    """The names of evaluators that score a trained run, in order."""
    return [name for name in names if REGISTRY[name].per_run]


def once(names: Sequence[str]) -> list[str]:
    """The names of evaluators that score the data set or the rows before them, in order."""
    return [name for name in names if not REGISTRY[name].per_run]


def run(context: EvalContext, names: Sequence[str], earlier: Sequence[Row] = ()) -> list[Row]:
    """The rows of the named evaluators, in order, each timed in a log line.

    Each evaluator sees, as context.rows, `earlier` (rows evaluated in other contexts, e.g. the demo's
    other runs) and the rows of the evaluators before it.
    """
    for name in names:
        if name not in REGISTRY:
            raise ValueError(f"unknown evaluator {name!r}; expected one of {sorted(REGISTRY)}")
    context.rows = list(earlier)
    for name in names:
        start = time.perf_counter()
        context.rows.extend(REGISTRY[name].fn(context))
        logging.info("evaluate: %s done in %.1fs", name, time.perf_counter() - start)
    return context.rows[len(earlier) :]


def evaluate(context: EvalContext) -> list[Row]:
    """The rows of config.evals.test on one run and its data set."""
    check_config(context.config)
    return run(context, context.config.evals.test)


def validate(context: EvalContext) -> dict[str, float]:
    """Training's validation scores: the VALIDATION rows of config.evals.validation, merged (the
    validation evaluator gives validation.SELECTION_METRIC, which picks the best checkpoint)."""
    scores: dict[str, float] = {}
    for row in run(context, context.config.evals.validation):
        if row.table == VALIDATION:
            scores.update(row.fields)
    return scores
