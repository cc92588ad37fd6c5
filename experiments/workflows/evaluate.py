"""Evaluation of one trained run: the evaluators of config.evals.test over the run and its data set,
written as tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experiments.evaluation import suite
from experiments.evaluation.context import EvalContext
from experiments.reports import tables
from experiments.runtime import datasets, run_config


def evaluate_run(config: Any, workdir: str) -> str:
    """Runs config.evals.test on `workdir`'s student (runtime.restore.student_dir) and writes
    <workdir>/eval/* (results.json, raw_probes.json, tables.md, median_ranks.png, units.png); returns
    the markdown. Memory grows with the test split only by its embeddings and per-row metadata."""
    context = EvalContext(config, datasets.open_built(config.data), workdir)
    return tables.write_rows(suite.evaluate(context), context.out_dir)


def evaluate_workdir(workdir: str, overrides: Mapping[str, Any] | None = None) -> str:
    """evaluate_run with the config the run in `workdir` saved (<workdir>/config.json), `overrides`
    ({"eval_chunk": 8, "evals.test": ("retrieval",)}) on top: `python -m experiments.evaluate
    --workdir=W` as a function."""
    return evaluate_run(run_config.load(workdir, overrides).config, workdir)
