"""The main job (`make demo`): build the bundled world, train the teacher, train the students with each
objective (model transfer, ranking, both), evaluate them against the baselines and against linear probes
on raw inputs, write a report.

    python -m experiments.demo --config=experiments/configs/world.py --workdir=runs/demo

The built data set is reused between runs; the models are trained afresh. The report lands in
<workdir>/report.md with PNG figures beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from alignment import parallel
from experiments import data, evaluation, launch, raw_probe, report, teacher, trainer

OBJECTIVES = (("transfer", "Model Transfer"), ("ranking", "Ranking"), ("both", "Both"))


class Stages:
    """Runs named stages, printing a line as each starts and ends, and records their wall times."""

    def __init__(self, total: int):
        self.total = total
        self.times: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        index = len(self.times) + 1
        print(f"== stage {index}/{self.total}: {name}", flush=True)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.times[name] = time.perf_counter() - start
        print(f"== stage {index}/{self.total}: {name} done in {self.times[name]:.0f}s", flush=True)
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


def run_demo(config, workdir: str) -> str:
    """Runs every stage; returns the markdown tables (also in <workdir>/report.md)."""
    start = time.perf_counter()
    stages = Stages(total=3 + 2 * len(OBJECTIVES) + 3)
    mesh = parallel.make_mesh()
    builder = stages.run("build the world data set (cached)", data.build, config.data)

    teacher_dir = os.path.join(workdir, teacher.TEACHER_SUBDIR)
    shutil.rmtree(teacher_dir, ignore_errors=True)
    module, params, teacher_metrics = stages.run(
        "train the teacher on the fine classes", teacher.train_teacher, config, builder, mesh
    )
    print("teacher: " + " | ".join(f"{k} {v:.3f}" for k, v in teacher_metrics.items()), flush=True)
    teacher.save_teacher(teacher_dir, params, {"metrics": teacher_metrics})
    stages.run(
        "write the teacher's probabilities beside the data set",
        teacher.precompute_teacher_probs,
        module,
        params,
        builder,
        mesh,
    )

    results = {}
    for objective, name in OBJECTIVES:
        run_dir = os.path.join(workdir, objective)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_config = _with_objective(config, objective, teacher_dir)
        stages.run(f"train the students: {name}", trainer.train, run_config, run_dir)
        results[name] = stages.run(
            f"evaluate {name}", evaluation.evaluate_checkpoint, run_config, run_dir
        )

    baselines = stages.run(
        "baselines: linear regression, CCA, normalized CCA",
        evaluation.baseline_results,
        config,
        builder,
        workdir,
    )
    raw_probes = stages.run(
        "linear probes on raw pixels, spectrograms and bags of words",
        raw_probe.raw_input_probes,
        builder,
    )
    rows = {**baselines, **results}
    markdown = stages.run(
        "write the report",
        report.write_report,
        workdir,
        rows,
        teacher_metrics,
        stages.times,
        [os.path.join(workdir, objective) for objective, _ in OBJECTIVES],
        raw_probes,
    )
    total = time.perf_counter() - start
    print(markdown)
    print(f"demo: done in {total / 60:.1f} min; report at {os.path.join(workdir, 'report.md')}")
    with open(os.path.join(workdir, "stage_times.json"), "w") as f:
        json.dump({**stages.times, "total": total}, f, indent=2)
    return markdown


def main(argv):
    del argv
    launch.initialize()
    run_demo(launch.CONFIG.value, launch.WORKDIR.value)


if __name__ == "__main__":
    launch.run(main)
