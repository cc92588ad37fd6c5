"""The demo (`make demo`): build the bundled world, train the teacher, train the students with each
objective (model transfer, ranking, both), evaluate them with the evaluation suite against the baselines
and linear probes on raw inputs, and write a report to <workdir>/report.md with PNG figures beside it.
The built data set is reused between runs; the models are trained afresh."""

from __future__ import annotations

import json
import os
import shutil
import time

from absl import logging

from alignment import parallel
from experiments.evaluation import suite
from experiments.evaluation.context import EvalContext, SplitCache
from experiments.reports import demo_report
from experiments.runtime import datasets, restore
from experiments.training import students, teacher

OBJECTIVES = (("transfer", "Model Transfer"), ("ranking", "Ranking"), ("both", "Both"))
STAGE_NAMES = {
    "baselines": "baselines: linear regression, CCA, normalized CCA",
    "raw_probes": "linear probes on raw pixels, spectrograms and bags of words",
    "versus": "each run against the baselines (paired bootstrap)",
}


class Stages:
    """Runs named stages, printing a line as each starts and ends, and records their wall times."""

    def __init__(self, total: int):
        self.total = total
        self.times: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        index = len(self.times) + 1
        logging.info("== stage %d/%d: %s", index, self.total, name)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.times[name] = time.perf_counter() - start
        logging.info("== stage %d/%d: %s done in %.0fs", index, self.total, name, self.times[name])
        return result


def _with_objective(config, objective: str, teacher_dir: str):
    """The config of one student run, reading the demo's teacher; validation during training is off,
    since every run is evaluated on the test set right after."""
    config = config.copy_and_resolve_references()
    config.unlock()
    config.loss.objective = objective
    config.teacher.source = "checkpoint"
    config.teacher.path = teacher_dir
    config.eval_every = 0
    config.lock()
    return config


def run_demo(config, workdir: str, config_file: str | None = None) -> str:
    """Runs every stage; returns the markdown tables (also in <workdir>/report.md). Each student run
    records `config_file` in its config.json, so evaluate and retrieve work from its workdir alone."""
    start = time.perf_counter()
    suite.check_config(config)
    names = config.evals.test
    stages = Stages(total=3 + 2 * len(OBJECTIVES) + len(suite.once(names)) + 1)
    mesh = parallel.make_mesh()
    builder = stages.run("build the world data set (cached)", datasets.build, config.data)

    teacher_dir = os.path.join(workdir, restore.TEACHER_SUBDIR)
    for name in (restore.TEACHER_SUBDIR, restore.TEACHER_TRAINING_SUBDIR):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    module, params, teacher_metrics = stages.run(
        "train the teacher on the fine classes",
        teacher.train_teacher,
        config,
        builder,
        workdir,
        mesh,
    )
    logging.info("teacher: %s", " | ".join(f"{k} {v:.3f}" for k, v in teacher_metrics.items()))
    restore.save_teacher(teacher_dir, params, {"metrics": teacher_metrics})
    stages.run(
        "write the teacher's probabilities beside the data set",
        teacher.precompute_teacher_probs,
        module,
        params,
        builder,
        mesh,
    )

    # One read of each split for every evaluation of the demo.
    splits = SplitCache(builder)
    rows = []
    for objective, name in OBJECTIVES:
        run_dir = os.path.join(workdir, objective)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_config = _with_objective(config, objective, teacher_dir)
        stages.run(f"train the students: {name}", students.train, run_config, run_dir, config_file)
        context = EvalContext(run_config, builder, run_dir, splits=splits, mesh=mesh)
        rows += stages.run(f"evaluate {name}", suite.run, context, suite.per_run(names))

    # The evaluators of the data set itself, and the comparisons of the rows before them (versus).
    context = EvalContext(config, builder, workdir, splits=splits, mesh=mesh)
    for evaluator in suite.once(names):
        stage = STAGE_NAMES.get(evaluator, evaluator)
        rows += stages.run(stage, suite.run, context, [evaluator], rows)
    markdown = stages.run(
        "write the report",
        demo_report.write_report,
        workdir,
        rows,
        teacher_metrics,
        stages.times,
        [os.path.join(workdir, objective) for objective, _ in OBJECTIVES],
    )
    total = time.perf_counter() - start
    logging.info(
        "demo: done in %.1f min; report at %s", total / 60, os.path.join(workdir, "report.md")
    )
    with open(os.path.join(workdir, "stage_times.json"), "w") as f:
        json.dump({**stages.times, "total": total}, f, indent=2)
    return markdown
