"""The ranking kinds compared: the paper's hinge, InfoNCE with CLIP's learned temperature and SigLIP's
sigmoid, each alone (objective "ranking") and with the KL transfer term (objective "both"), trained on
the same data, teacher, steps and seed, and scored by the median rank of the test triplets in all six
directions (the retrieval evaluator).

python -m studies.objectives                                   # the tiny config, 20 steps a run
python -m studies.objectives --config=world --out=/tmp/objectives-world
python -m studies.objectives --config=world --data_dir=data/tfds --teacher=runs/demo/teacher \
    --kinds=infonce_learned,sigmoid                            # on the data and teacher of `make demo`
python -m studies.objectives --config=own_data --fixture=digits --out=/tmp/objectives-digits

Builds the data set (with --fixture, first writes that fixture kind's folder at its studies.own_data
size) and trains its teacher once in <out> (default: a temporary folder), unless --data_dir and
--teacher name ones already prepared; then trains and evaluates one run per (objective, kind) in
<out>/<objective>-<kind> (a run that finds checkpoints there resumes from them, and the report says
from which step). Prints a table and writes
studies/results/objectives-<config>[-<fixture>]-<steps>steps-<date>.json.

Nothing is tuned: every run keeps the config's other settings, with validation during training off
(every run is scored at its last step). loss.same_class_weight (which own_data sets) needs the hinge
with the KL term: the other runs reset it to 1, and the report lists that per run.
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
CONFIGS = ("tiny", "world", "own_data")


def _config(name: str, data_dir: str, teacher: str, steps: int | None) -> Any:
    """The config `name` reading the data set in `data_dir` and the teacher checkpoint `teacher`,
    evaluated on retrieval, without validation during training."""
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    with config.unlocked():
        config.data.data_dir = data_dir
        config.teacher.source = "checkpoint"
        config.teacher.path = teacher
        config.evals.test = ("retrieval",)
        config.eval_every = 0
        config.eval_every_epochs = 0
        if steps is not None:
            config.total_steps = steps
            config.num_epochs = 0
    return config


def write_fixture_folder(kind: str, out: str) -> str:
    """Writes fixture `kind` at its studies.own_data size (seed 0) in <out>/folder, once."""
    from fixtures import FULL_SIZES, write_fixture

    folder = os.path.join(out, "folder")
    if not os.path.isfile(os.path.join(folder, "test.jsonl")):
        write_fixture(kind, folder, seed=0, **FULL_SIZES[kind])
    return folder


def prepare(config: Any) -> None:
    """Builds the data set and trains the teacher into config.teacher.path, as `experiments.train_teacher`
    does (once: both are kept)."""
    from experiments.training import teacher

    if os.path.isdir(config.teacher.path):
        return
    trained = config.copy_and_resolve_references()
    trained.teacher.source = "train"  # saved to <workdir>/teacher, which is config.teacher.path
    teacher.run_teacher(trained, os.path.dirname(config.teacher.path))


def run_config(config: Any, objective: str, kind: str) -> tuple[Any, dict[str, Any]]:
    """The config of one (objective, kind), and the settings it resets from `config`: weighing
    same-class negatives needs the hinge and the teacher's classes (objective "both")."""
    config = config.copy_and_resolve_references()
    config.loss.objective = objective
    config.loss.ranking_kind = kind
    reset: dict[str, Any] = {}
    if config.loss.same_class_weight != 1.0 and (kind != "hinge" or objective != "both"):
        reset["loss.same_class_weight"] = 1.0
        config.loss.same_class_weight = 1.0
    return config, reset


def run_one(config: Any, objective: str, kind: str, out: str) -> dict[str, Any]:
    """Trains and evaluates one (objective, kind); returns its median ranks, seconds and the step it
    resumed from (a checkpoint already in <out>/<objective>-<kind>: its seconds do not time a whole run)."""
    from experiments.runtime.restore import latest_student_step
    from experiments.training import students
    from experiments.workflows.evaluate import evaluate_run

    workdir = os.path.join(out, f"{objective}-{kind}")
    config, reset = run_config(config, objective, kind)
    resumed_from = latest_student_step(workdir)
    if resumed_from is not None:
        print(
            f"objectives: {objective}-{kind} resumes {workdir} at step {resumed_from}", flush=True
        )
    start = time.perf_counter()
    students.train(config, workdir)
    evaluate_run(config, workdir)
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        results = json.load(f)
    trained = next(entry for entry in results.values() if "objective" in entry)
    ranks = {d: row["median_rank"] for d, row in trained["retrieval"].items()}
    seconds = time.perf_counter() - start
    print(f"objectives: {objective}-{kind} {ranks} in {seconds:.0f} s", flush=True)
    return {"median_rank": ranks, "seconds": seconds, "reset": reset, "resumed_from": resumed_from}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="tiny", choices=CONFIGS)
    parser.add_argument("--fixture", default="", help="own_data: the fixture kind to write and use")
    parser.add_argument(
        "--steps", type=int, default=None, help="total_steps (default: the config's)"
    )
    parser.add_argument("--out", default=None, help="where data, teacher and runs go")
    parser.add_argument("--data_dir", default=None, help="a built data set (with --teacher)")
    parser.add_argument("--teacher", default=None, help="a trained teacher checkpoint")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    if (args.config == "own_data") != bool(args.fixture):
        parser.error("--fixture goes with --config=own_data, and own_data needs a --fixture")
    if (args.data_dir is None) != (args.teacher is None):
        parser.error("--data_dir and --teacher go together")
    kinds = tuple(args.kinds.split(","))
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    from experiments.runtime.restore import TEACHER_SUBDIR  # where run_teacher saves a teacher

    out = args.out or tempfile.mkdtemp(prefix="objectives-")
    config = _config(
        args.config,
        os.path.abspath(args.data_dir or os.path.join(out, "data")),
        os.path.abspath(args.teacher or os.path.join(out, TEACHER_SUBDIR)),
        args.steps,
    )
    if args.fixture:
        with config.unlocked():
            config.data.source = write_fixture_folder(args.fixture, out)
    prepare(config)
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "config": args.config,
        "fixture": args.fixture or None,
        "steps": args.steps,
        "seed": config.seed,
        "runs": {},
    }
    for objective in OBJECTIVES:
        for kind in kinds:
            report["runs"][f"{objective}-{kind}"] = run_one(config, objective, kind, out)
    directions = list(next(iter(report["runs"].values()))["median_rank"])
    print(f"{'run':24s}" + "".join(f"{d:>14s}" for d in directions) + f"{'seconds':>9s}")
    for name, run in report["runs"].items():
        ranks = "".join(f"{run['median_rank'][d]:14.1f}" for d in directions)
        print(f"{name:24s}{ranks}{run['seconds']:9.0f}")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    steps = f"{args.steps}steps" if args.steps else "defaultsteps"
    what = "-".join([args.config, *([args.fixture] if args.fixture else []), steps])
    path = os.path.join(RESULTS_DIR, f"objectives-{what}-{report['date']}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"objectives: wrote {path}")


if __name__ == "__main__":
    main()
