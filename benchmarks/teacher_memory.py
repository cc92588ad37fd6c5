"""The image teacher's host memory against data set size, at the paper config's image shape.

Data sets of N and FACTOR * N random rows at the paper config's stored shapes (227x227x3 frames;
benchmarks/input_scale.py's RandomRows, labelled with its CLASSES label names) are written into a
scratch folder; each job of JOBS then runs on each data set in a fresh process, so that its peak RSS
(VmHWM) is its own. The paper config's teacher (torchvision's AlexNet layout, 1000 classes) is
trained from scratch here (teacher.source="train") for a few small steps.

python -m benchmarks.teacher_memory --job=train --data_dir=DIR --workdir=DIR  # one job: a JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import tensorflow_datasets as tfds

from alignment import parallel
from alignment.models import create_teacher
from benchmarks import common, input_scale
from experiments.training import teacher

CONFIG = "paper"
ROWS = 256
FACTOR = 8
TRAIN_STEPS = 4
TRAIN_BATCH = 8


def teacher_config(steps: int = TRAIN_STEPS, batch: int = TRAIN_BATCH) -> Any:
    """The paper config with its teacher trained from scratch for `steps` steps of `batch` images
    (the jobs get the data set as a builder, so config.data does not point at it)."""
    overrides = {
        "teacher.source": "train",
        "teacher.total_steps": steps,
        "teacher.batch_size": batch,
    }
    return common.load_config(CONFIG, **overrides)


def _train(config: Any, builder: tfds.core.DatasetBuilder, workdir: str, mesh: Any) -> None:
    """train_teacher: its steps, its checkpoint and its train-accuracy pass over the train split."""
    teacher.train_teacher(config, builder, workdir, mesh)


def _precompute(config: Any, builder: tfds.core.DatasetBuilder, workdir: str, mesh: Any) -> None:
    """precompute_teacher_probs over the train split, with fresh parameters: the memory of writing
    the probabilities does not depend on what the teacher learned."""
    del workdir
    module = create_teacher(config.teacher)
    params = module.init(jax.random.PRNGKey(config.seed), module.example_inputs())["params"]
    params = jax.device_put(params, parallel.replicated(mesh))
    teacher.precompute_teacher_probs(module, params, builder, mesh)


# The measured jobs: name -> job(config, builder of the scratch data set, workdir, mesh). Each is
# measured on both data sets and gets its own entry in the results; `evaluate` over a test split of
# N and FACTOR * N rows is to be one more entry here (with a test split in RandomRows, which writes
# only a train split).
JOBS: dict[str, Callable[[Any, tfds.core.DatasetBuilder, str, Any], None]] = {
    "train": _train,
    "precompute": _precompute,
}


def _run_job(job: str, data_dir: str, workdir: str, steps: int, batch: int) -> dict[str, Any]:
    """Runs one job in this process: its seconds and this process's peak RSS."""
    builder = tfds.builder_from_directory(data_dir)
    config = teacher_config(steps, batch)
    start = time.perf_counter()
    JOBS[job](config, builder, workdir, parallel.make_mesh())
    return {"peak_rss_bytes": input_scale.peak_rss_bytes(), "seconds": time.perf_counter() - start}


def _command(job: str, data_dir: str, workdir: str, steps: int, batch: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.teacher_memory", f"--job={job}",
            f"--data_dir={data_dir}", f"--workdir={workdir}", f"--steps={steps}",
            f"--batch={batch}"]  # fmt: skip


def measure(
    rows: int = ROWS, factor: int = FACTOR, steps: int = TRAIN_STEPS, batch: int = TRAIN_BATCH
) -> dict[str, Any]:
    """Peak RSS of every job of JOBS over data sets of `rows` and `factor * rows` image rows at the
    paper config's shapes, one fresh process per job and size; every ratio should stay near 1."""
    sizes = [rows, factor * rows]
    peaks: dict[str, list[int]] = {job: [] for job in JOBS}
    seconds: dict[str, list[float]] = {job: [] for job in JOBS}
    with tempfile.TemporaryDirectory(prefix="shr-teacher-memory-") as scratch:
        for n in sizes:
            folder, _ = input_scale.write_rows(scratch, CONFIG, n)
            for job in JOBS:
                workdir = os.path.join(scratch, f"{job}-{n}")
                result = input_scale.launch([_command(job, folder, workdir, steps, batch)])[0]
                peaks[job].append(result["peak_rss_bytes"])
                seconds[job].append(result["seconds"])
    ratios = {job: peak[1] / peak[0] for job, peak in peaks.items()}
    config = teacher_config(steps, batch)
    return {
        "config": CONFIG,
        "image_shape": [config.data.image_size, config.data.image_size, 3],
        "teacher_classes": config.teacher.num_classes,
        "rows": sizes,
        "rows_ratio": factor,
        "peak_rss_bytes": peaks,
        "rss_ratio": ratios,
        "max_rss_ratio": max(ratios.values()),
        "seconds": seconds,
        "train_steps": steps,
        "train_batch": batch,
        "predict_batch": teacher.PREDICT_BATCH,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, choices=sorted(JOBS))
    parser.add_argument("--data_dir", required=True, help="a data set written by write_rows")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=TRAIN_STEPS)
    parser.add_argument("--batch", type=int, default=TRAIN_BATCH)
    args = parser.parse_args()
    print(json.dumps(_run_job(args.job, args.data_dir, args.workdir, args.steps, args.batch)))


if __name__ == "__main__":
    main()
