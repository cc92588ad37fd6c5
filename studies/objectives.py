"""The ranking kinds compared: the paper's hinge, InfoNCE with CLIP's learned temperature and SigLIP's
sigmoid, each alone (objective "ranking") and with the KL transfer term (objective "both"), trained on
the same data, teacher, steps and seed, and scored by the median rank of the test triplets in all six
directions (the retrieval evaluator).

python -m studies.objectives                                   # the tiny config, 20 steps a run
python -m studies.objectives --config=world --steps=300 --out=/tmp/objectives

Builds the config's world data set and trains its teacher once in <out> (default: a temporary
folder), then trains and evaluates one run per (objective, kind) in <out>/<objective>-<kind>. Prints a
table and writes studies/results/objectives-<config>-<steps>steps-<date>.json. Nothing is tuned: every run keeps the
config's other settings (margin, weights, learning rate).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import tempfile
import time
from typing import Any

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
OBJECTIVES = ("ranking", "both")
KINDS = ("hinge", "infonce_learned", "sigmoid")


def _config(name: str, out: str, steps: int | None) -> Any:
    """The config `name` reading the data set and teacher prepared in `out`, evaluated on retrieval."""
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    with config.unlocked():
        config.data.data_dir = os.path.join(out, "data")
        config.teacher.source = "checkpoint"
        config.teacher.path = os.path.join(out, "teacher")
        config.evals.test = ("retrieval",)
        config.eval_every = 0
        if steps is not None:
            config.total_steps = steps
    return config


def prepare(config: Any, out: str) -> None:
    """Builds the data set and trains the teacher (once: both are kept in `out`)."""
    from alignment import parallel
    from experiments.runtime import datasets, restore
    from experiments.training import teacher

    if os.path.isdir(config.teacher.path):
        return
    builder = datasets.build(config.data)
    _, params, _ = teacher.train_teacher(config, builder, out, parallel.make_mesh())
    restore.save_teacher(config.teacher.path, params, {})


def run_one(config: Any, objective: str, kind: str, out: str) -> dict[str, Any]:
    """Trains and evaluates one (objective, kind); returns its median ranks and seconds."""
    from experiments.training import students
    from experiments.workflows.evaluate import evaluate_run

    workdir = os.path.join(out, f"{objective}-{kind}")
    config = config.copy_and_resolve_references()
    config.loss.objective = objective
    config.loss.ranking_kind = kind
    start = time.perf_counter()
    students.train(config, workdir)
    evaluate_run(config, workdir)
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        results = json.load(f)
    trained = next(entry for entry in results.values() if "objective" in entry)
    ranks = {d: row["median_rank"] for d, row in trained["retrieval"].items()}
    return {"median_rank": ranks, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="tiny", choices=("tiny", "world"))
    parser.add_argument(
        "--steps", type=int, default=None, help="total_steps (default: the config's)"
    )
    parser.add_argument("--out", default=None, help="where data, teacher and runs go")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="objectives-")
    config = _config(args.config, out, args.steps)
    prepare(config, out)
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "config": args.config,
        "steps": config.total_steps,
        "seed": config.seed,
        "runs": {},
    }
    for objective in OBJECTIVES:
        for kind in KINDS:
            report["runs"][f"{objective}-{kind}"] = run_one(config, objective, kind, out)
    directions = list(next(iter(report["runs"].values()))["median_rank"])
    print(f"{'run':24s}" + "".join(f"{d:>14s}" for d in directions) + f"{'seconds':>9s}")
    for name, run in report["runs"].items():
        ranks = "".join(f"{run['median_rank'][d]:14.1f}" for d in directions)
        print(f"{name:24s}{ranks}{run['seconds']:9.0f}")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    name = f"objectives-{args.config}-{config.total_steps}steps-{report['date']}.json"
    path = os.path.join(RESULTS_DIR, name)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"objectives: wrote {path}")


if __name__ == "__main__":
    main()
