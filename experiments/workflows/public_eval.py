"""A trained run on a public benchmark folder: load it, embed it with the run's network, score it, and
write <workdir>/benchmarks/NAME.{json,md}."""

from __future__ import annotations

from typing import Any

from absl import logging

from data_pipelines import benchmarks as loaders
from data_pipelines.benchmarks import prompts
from experiments.evaluation import benchmarks
from experiments.evaluation.context import EvalContext
from experiments.reports import benchmark_tables
from experiments.runtime import datasets


def run_benchmark(
    config: Any,
    workdir: str,
    name: str,
    path: str,
    pooling: str = "mean",
    prompts_file: str | None = None,
) -> str:
    """Scores the run in `workdir` (its best, else latest checkpoint) on benchmark `name` read from
    `path`; returns the markdown (also in <workdir>/benchmarks/NAME.md)."""
    dataset = loaders.load(name, path)
    logging.info("benchmark: %s from %s: %s", name, path, dataset.skipped.summary())
    context = EvalContext(config, datasets.open_built(config.data), workdir)
    if isinstance(dataset, loaders.ClassificationSet):
        templates = (
            prompts.read_templates(prompts_file) if prompts_file else prompts.DEFAULT_TEMPLATES
        )
        result = benchmarks.sound_classification(context, dataset, templates, pooling)
    else:
        if prompts_file:
            raise ValueError(f"--prompts is for classification benchmarks; {name} has captions")
        result = benchmarks.caption_retrieval(context, dataset, pooling)
    result.update(step=context.student.step, checkpoint=context.student.checkpoint, path=path)
    written, markdown = benchmark_tables.write_benchmark(result, workdir)
    logging.info("benchmark: wrote %s", written)
    return markdown
