"""Evaluation of one trained run: the evaluation suite over the run and its data set, written as tables."""

from __future__ import annotations

from typing import Any

from experiments.evaluation import suite
from experiments.evaluation.context import EvalContext
from experiments.reports import tables
from experiments.runtime import datasets

# The baselines (first in results.json, as in the paper's tables), Tables 1-3 and hidden units of the
# run, the raw-input probes.
EVALUATORS = ("baselines", *suite.TRAINED, "raw_probes")


def evaluate_run(config: Any, workdir: str) -> str:
    """Runs EVALUATORS on `workdir`'s student (runtime.restore.student_dir) and writes <workdir>/eval/*
    (results.json, raw_probes.json, tables.md, median_ranks.png, units.png); returns the markdown."""
    builder = datasets.open_built(config.data)
    context = EvalContext(config, builder, workdir)
    rows = suite.run(context, EVALUATORS)
    return tables.write_rows(rows, context.out_dir)
