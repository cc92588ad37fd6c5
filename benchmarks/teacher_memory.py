"""Host memory against data set size at the paper config's image shape: the image teacher's jobs and
evaluation.

Data sets of N and FACTOR * N random rows at the paper config's stored shapes (227x227x3 frames;
benchmarks/input_scale.py's RandomRows, labelled with its CLASSES label names) are written into a
scratch folder; each job of JOBS then runs on each data set in a fresh process, so that its peak RSS
(VmHWM) is its own. The paper config's teacher (torchvision's AlexNet layout, 1000 classes) is
trained from scratch here (teacher.source="train") for a few small steps. `evaluate` runs the
config's evaluators (config.evals.test) on a student at the paper config's shapes, over data sets
whose test split has N and FACTOR * N image+sound+text rows and whose train and validation splits
keep one size (ROWS and VALIDATION_ROWS), since the baselines and probes fit on those.

python -m benchmarks.teacher_memory --job=train --data_dir=DIR --workdir=DIR  # one job: a JSON line
python -m benchmarks.teacher_memory --job=evaluate --prepare --workdir=DIR   # what the job reads
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import tensorflow_datasets as tfds

from alignment import parallel, streams
from alignment.models import create_model, create_teacher
from benchmarks import common, input_scale
from experiments.evaluation import suite
from experiments.evaluation.context import EvalContext
from experiments.reports import tables
from experiments.runtime import checkpointing, restore
from experiments.runtime.optimizer import make_optimizer
from experiments.training import teacher

CONFIG = "paper"
ROWS = 256
FACTOR = 8
TRAIN_STEPS = 4
TRAIN_BATCH = 8
# The validation rows of every `evaluate` data set: transfer and the raw-input probes fit on them.
VALIDATION_ROWS = 128
# The student `evaluate` restores: float32, as bfloat16 is emulated (slow) on CPUs; retrieval in
# chunks of ROWS items at both sizes, so that the chunk (what the baselines hold: a chunk's raw
# pixels) is the same and only the test split grows (the default, 1000, would give the N-row data
# set one chunk of N).
EVALUATE_OVERRIDES = {"model.dtype": "float32", "eval_chunk": ROWS}

Builder = tfds.core.DatasetBuilder


def teacher_config(steps: int = TRAIN_STEPS, batch: int = TRAIN_BATCH, **overrides: Any) -> Any:
    """The paper config with its teacher trained from scratch for `steps` steps of `batch` images
    (the jobs get the data set as a builder, so config.data does not point at it), `overrides`
    (dotted paths) on top."""
    teacher_overrides = {
        "teacher.source": "train",
        "teacher.total_steps": steps,
        "teacher.batch_size": batch,
    }
    return common.load_config(CONFIG, **teacher_overrides, **overrides)


def evaluate_config(steps: int = TRAIN_STEPS, batch: int = TRAIN_BATCH) -> Any:
    """teacher_config with EVALUATE_OVERRIDES. Evaluation restores no teacher (none is in its
    workdir: the baselines featurize raw pixels), so the teacher's settings do not matter to it."""
    return teacher_config(steps, batch, **EVALUATE_OVERRIDES)


def _train(config: Any, builder: Builder, workdir: str, mesh: Any) -> None:
    """train_teacher: its steps, its checkpoint and its train-accuracy pass over the train split."""
    teacher.train_teacher(config, builder, workdir, mesh)


def _precompute(config: Any, builder: Builder, workdir: str, mesh: Any) -> None:
    """precompute_teacher_probs over the train split, with fresh parameters: the memory of writing
    the probabilities does not depend on what the teacher learned."""
    del workdir
    module = create_teacher(config.teacher)
    params = module.init(jax.random.PRNGKey(config.seed), module.example_inputs())["params"]
    params = jax.device_put(params, parallel.replicated(mesh))
    teacher.precompute_teacher_probs(module, params, builder, mesh)


def _save_student(config: Any, workdir: str) -> None:
    """A fresh student of config.model (parameters and optimizer state, as training saves them) as
    step 0 of <workdir>/checkpoints, where evaluation restores it from: evaluation's memory does
    not depend on what the student learned."""
    mesh = parallel.make_mesh()
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    example = streams.example_batch(config.model)
    state = parallel.create_train_state(
        model, optimizer, jax.random.PRNGKey(config.seed), example, mesh
    )
    directory = restore.subdir(workdir, restore.CHECKPOINT_SUBDIR)
    manager = checkpointing.make_manager(directory, async_save=False)
    checkpointing.save(manager, 0, state, {"config": json.loads(config.to_json_best_effort())})
    manager.wait_until_finished()
    manager.close()


def _evaluate(config: Any, builder: Builder, workdir: str, mesh: Any) -> None:
    """experiments.workflows.evaluate.evaluate_run on the scratch data set (which config.data cannot
    name, so the context gets its builder): config.evals.test on <workdir>'s student, its tables
    written to <workdir>/eval."""
    context = EvalContext(config, builder, workdir, mesh=mesh)
    tables.write_rows(suite.evaluate(context), context.out_dir)


def _all_rows(n: int) -> tuple[int, dict[str, int]]:
    """The teacher's data sets: n train rows, no other split."""
    return n, {}


def _test_rows(n: int) -> tuple[int, dict[str, int]]:
    """Evaluation's data sets: n test triplets; the train and validation splits keep their size."""
    return ROWS, {"validation": VALIDATION_ROWS, "test": n}


@dataclasses.dataclass(frozen=True)
class Job:
    """A measured job.

    run: (config, builder of the scratch data set, workdir, mesh) -> None, in a fresh process per
      data set size.
    config: (teacher steps, teacher batch) -> the config it runs with.
    rows: N -> (train rows, {split: image+sound+text rows}) of its data set of size N.
    prepare: (config, workdir) -> None, run once in a process of its own before the job, unmeasured;
      each run starts from a copy of what it wrote.
    """

    run: Callable[[Any, Builder, str, Any], None]
    config: Callable[[int, int], Any] = teacher_config
    rows: Callable[[int], tuple[int, dict[str, int]]] = _all_rows
    prepare: Callable[[Any, str], None] | None = None


# The measured jobs by name. Each is measured on both data set sizes and gets its own entry in the
# results.
JOBS: dict[str, Job] = {
    "train": Job(_train),
    "precompute": Job(_precompute),
    "evaluate": Job(_evaluate, evaluate_config, _test_rows, _save_student),
}


def _run_job(job: str, data_dir: str, workdir: str, steps: int, batch: int) -> dict[str, Any]:
    """Runs one job in this process: its seconds and this process's peak RSS."""
    builder = tfds.builder_from_directory(data_dir)
    config = JOBS[job].config(steps, batch)
    start = time.perf_counter()
    JOBS[job].run(config, builder, workdir, parallel.make_mesh())
    return {"peak_rss_bytes": input_scale.peak_rss_bytes(), "seconds": time.perf_counter() - start}


def _prepare(job: str, workdir: str, steps: int, batch: int) -> dict[str, Any]:
    """Runs one job's prepare in this process: its seconds."""
    start = time.perf_counter()
    JOBS[job].prepare(JOBS[job].config(steps, batch), workdir)
    return {"seconds": time.perf_counter() - start}


def _command(job: str, workdir: str, steps: int, batch: int, data_dir: str = "") -> list[str]:
    """The worker command of one job on the data set in `data_dir`, or of its prepare without one."""
    where = [f"--data_dir={data_dir}"] if data_dir else ["--prepare"]
    return [sys.executable, "-m", "benchmarks.teacher_memory", f"--job={job}", *where,
            f"--workdir={workdir}", f"--steps={steps}", f"--batch={batch}"]  # fmt: skip


def _prepared(scratch: str, job: str, steps: int, batch: int) -> tuple[str | None, float]:
    """(the folder a job's prepare wrote, or None without one; its seconds)."""
    if JOBS[job].prepare is None:
        return None, 0.0
    folder = os.path.join(scratch, f"{job}-prepared")
    return folder, input_scale.launch([_command(job, folder, steps, batch)])[0]["seconds"]


def _data_sets(scratch: str, jobs: Sequence[str], n: int) -> dict[str, str]:
    """{job: folder} of the data sets of size n the jobs read (jobs of the same rows share one: TFDS
    keeps a data set it has built)."""
    return {job: input_scale.write_rows(scratch, CONFIG, *JOBS[job].rows(n))[0] for job in jobs}


def _workdir(scratch: str, job: str, n: int, prepared: str | None) -> str:
    """A fresh workdir of the job on size n: a copy (hard links) of what its prepare wrote."""
    workdir = os.path.join(scratch, f"{job}-{n}")
    if prepared is not None:
        shutil.copytree(prepared, workdir, copy_function=os.link)
    return workdir


def _evaluate_fields(steps: int, batch: int) -> dict[str, Any]:
    """What the evaluate job runs: evaluators, chunk, the student's widths, fixed split sizes."""
    config = evaluate_config(steps, batch)
    _, state = restore.student_abstract_state(config)
    model = config.model
    return {
        "evaluators": list(config.evals.test),
        "eval_chunk": config.eval_chunk,
        "student_params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.params))),
        "student_dtype": model.dtype,
        "student_widths": {
            "vision": list(model.vision.channels),
            "sound": list(model.sound.channels),
            "text": list(model.text.channels),
            "tower_dim": model.tower_dim,
            "fc_dims": list(model.fc_dims),
            "num_classes": model.num_classes,
        },
        "train_rows": ROWS,
        "validation_rows": VALIDATION_ROWS,
    }


def measure(
    rows: int = ROWS,
    factor: int = FACTOR,
    steps: int = TRAIN_STEPS,
    batch: int = TRAIN_BATCH,
    jobs: Sequence[str] = tuple(JOBS),
) -> dict[str, Any]:
    """Peak RSS of each of `jobs` (names in JOBS) over data sets of `rows` and `factor * rows` rows
    (of the split the job grows) at the paper config's shapes, one fresh process per job and size;
    every ratio should stay near 1."""
    sizes = [rows, factor * rows]
    peaks: dict[str, list[int]] = {job: [] for job in jobs}
    seconds: dict[str, list[float]] = {job: [] for job in jobs}
    with tempfile.TemporaryDirectory(prefix="shr-teacher-memory-") as scratch:
        prepared = {job: _prepared(scratch, job, steps, batch) for job in jobs}
        for n in sizes:
            folders = _data_sets(scratch, jobs, n)
            for job in jobs:
                workdir = _workdir(scratch, job, n, prepared[job][0])
                command = _command(job, workdir, steps, batch, folders[job])
                result = input_scale.launch([command])[0]
                peaks[job].append(result["peak_rss_bytes"])
                seconds[job].append(result["seconds"])
    ratios = {job: peak[1] / peak[0] for job, peak in peaks.items()}
    config = teacher_config(steps, batch)
    results = {
        "config": CONFIG,
        "image_shape": [config.data.image_size, config.data.image_size, 3],
        "teacher_classes": config.teacher.num_classes,
        "rows": sizes,
        "rows_ratio": factor,
        "peak_rss_bytes": peaks,
        "rss_ratio": ratios,
        "max_rss_ratio": max(ratios.values()),
        "seconds": seconds,
        "prepare_seconds": {job: s for job, (folder, s) in prepared.items() if folder},
        "train_steps": steps,
        "train_batch": batch,
        "predict_batch": teacher.PREDICT_BATCH,
    }
    if "evaluate" in jobs:
        results["evaluate"] = _evaluate_fields(steps, batch)
    return results


def parse_jobs(names: str) -> tuple[str, ...]:
    """Comma-separated job names -> the names, in JOBS order; ValueError on an unknown one."""
    chosen = [name for name in names.split(",") if name]
    unknown = sorted(set(chosen) - set(JOBS))
    if unknown or not chosen:
        raise ValueError(f"teacher_memory jobs {unknown or names!r}: expected some of {list(JOBS)}")
    return tuple(job for job in JOBS if job in chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, choices=list(JOBS))
    place = parser.add_mutually_exclusive_group(required=True)
    place.add_argument("--data_dir", help="a data set written by input_scale.write_rows")
    place.add_argument("--prepare", action="store_true", help="run the job's prepare instead")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=TRAIN_STEPS)
    parser.add_argument("--batch", type=int, default=TRAIN_BATCH)
    args = parser.parse_args()
    if args.prepare:
        result = _prepare(args.job, args.workdir, args.steps, args.batch)
    else:
        result = _run_job(args.job, args.data_dir, args.workdir, args.steps, args.batch)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
