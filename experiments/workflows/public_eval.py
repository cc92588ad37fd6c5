"""A trained run on a public set folder: load it, embed it with the run's network, score it, and
write <workdir>/public_eval/NAME.{json,md}."""

from __future__ import annotations

from typing import Any

from absl import logging

from data_pipelines import public_sets as loaders
from data_pipelines.public_sets import prompts
from experiments.evaluation import public_sets
from experiments.evaluation.context import EvalContext
from experiments.reports import public_tables
from experiments.runtime import datasets


def run_public_eval(
    config: Any,
    workdir: str,
    name: str,
    path: str,
    pooling: str = "mean",
    prompts_file: str | None = None,
) -> str:
    """Scores the run in `workdir` (its best, else latest checkpoint) on public set `name` read from
    `path`; returns the markdown (also in <workdir>/public_eval/NAME.md)."""
    dataset = loaders.load(name, path)
    logging.info("public_eval: %s from %s: %s", name, path, dataset.skipped.summary())
    context = EvalContext(config, datasets.open_built(config.data), workdir)
    if isinstance(dataset, loaders.ClassificationSet):
        templates = (
            prompts.read_templates(prompts_file) if prompts_file else prompts.DEFAULT_TEMPLATES
        )
        result = public_sets.sound_classification(context, dataset, templates, pooling)
    else:
        if prompts_file:
            raise ValueError(f"--prompts is for classification sets; {name} has captions")
        result = public_sets.caption_retrieval(context, dataset, pooling)
    result.update(step=context.student.step, checkpoint=context.student.checkpoint, path=path)
    written, markdown = public_tables.write_public_result(result, workdir)
    logging.info("public_eval: wrote %s", written)
    return markdown
