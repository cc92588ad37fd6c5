"""Evaluates the latest checkpoint of a run and writes the paper's tables into <workdir>/eval/.

    python -m experiments.evaluate --config=experiments/configs/world.py --workdir=runs/world

Use the config (and overrides) the run was trained with. Writes results.json (every number, by row),
tables.md (Tables 1-3, raw-input probes, recall@k, hidden units; also printed), median_ranks.png and
units.png, and raw_probes.json (linear probes on raw pixels, spectrograms and bags of words; skipped, with
a line saying why, on a data set without labeled validation and test rows of every modality).
The baselines (Random, Linear Reg., CCA, Normalized CCA) are fit on the same data set; the image features
are the teacher's of config.teacher.path or <workdir>/teacher when there is one.
"""

from __future__ import annotations

import os
from typing import Any

from experiments import data, launch, raw_probe
from experiments.evaluation import baseline_results, evaluate_checkpoint, write_report

EVAL_SUBDIR = "eval"


def run(config: Any, workdir: str) -> str:
    """Evaluates `workdir` and its baselines, writes <workdir>/eval/*, returns the tables' markdown."""
    out_dir = os.path.join(workdir, EVAL_SUBDIR)
    builder = data.open_built(config.data)
    config = data.resolve_config(config, builder)
    trained = evaluate_checkpoint(config, workdir, out_dir)
    print(f"evaluate: step {trained['step']} from {trained['checkpoint']}", flush=True)
    rows = {**baseline_results(config, builder, workdir), trained["row"]: trained}
    return write_report(rows, out_dir, _raw_probes(builder))


def _raw_probes(builder: Any) -> dict[str, Any] | None:
    try:
        return raw_probe.raw_input_probes(builder)
    except raw_probe.NoProbeRows as e:
        print(f"evaluate: raw-input probes skipped: {e}", flush=True)
        return None


def main(argv):
    del argv
    launch.initialize()
    markdown = run(launch.CONFIG.value, launch.WORKDIR.value)
    print(markdown)
    print(f"evaluate: wrote {os.path.join(launch.WORKDIR.value, EVAL_SUBDIR)}", flush=True)


if __name__ == "__main__":
    launch.run(main)
