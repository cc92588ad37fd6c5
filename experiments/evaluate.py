"""Evaluates a trained run and writes the paper's tables into <workdir>/eval/.

    python -m experiments.evaluate --workdir=runs/world

The run's saved config (<workdir>/config.json) is used; --config and --config.* overrides given here
apply on top. Reads <workdir>/best when training kept one (config.eval_checkpoint), else the latest
checkpoint. Writes results.json (every number, by method), tables.md (Tables 1-3, raw-input probes,
recall@k, hidden units; also printed), median_ranks.png and units.png, and raw_probes.json (linear probes
on raw pixels, spectrograms and bags of words; skipped, with a line saying why, on a data set without
labeled validation and test rows of every modality). The baselines (Random, Linear Reg., CCA, Normalized
CCA) are fit on the same data set; the image features are the teacher's of config.teacher.path or
<workdir>/teacher when there is one.
"""

import os

from absl import logging

from experiments.cli import launch
from experiments.workflows.evaluate import evaluate_run


def main(argv):
    del argv
    launch.initialize()
    markdown = evaluate_run(launch.config(), launch.WORKDIR.value)
    print(markdown)
    logging.info("evaluate: wrote %s", os.path.join(launch.WORKDIR.value, "eval"))


if __name__ == "__main__":
    launch.run(main)
