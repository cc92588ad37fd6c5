"""How much of the world config's step time is lost to its input: the step fed by the real pipeline
(input worker processes, batches put on the mesh ahead of the step, as the training loop does) against
the same compiled step on one batch already on the devices."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import jax
import numpy as np

from alignment import parallel
from benchmarks import train_step
from data_pipelines import augment, input_pipeline
from data_pipelines.builders.teacher_probs import save_teacher_probs
from experiments.runtime import datasets


def _small_world(config: Any, scratch: str) -> Any:
    """The small world at config's stored shapes, built in `scratch`, with random teacher
    probabilities beside it (the step then runs no teacher, as after --config.teacher.precompute)."""
    small = config.copy_and_resolve_references()
    with small.unlocked():
        small.data.builder_config = "small"
        small.data.data_dir = os.path.join(scratch, "tfds")
    builder = datasets.build(small.data)
    rows = builder.info.splits["train"].num_examples
    probs = np.random.default_rng(0).dirichlet(np.ones(config.model.num_classes), rows)
    save_teacher_probs(os.fspath(builder.data_dir), "train", probs.astype(np.float32))
    return builder


def _seconds_per_step(run_step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        run_step()
    return (time.perf_counter() - start) / steps


def measure(config: Any, *, steps: int = 40, warmup: int = 5) -> dict[str, Any]:
    """Seconds per step fed by the pipeline and on a batch in memory (each over `steps` steps after
    `warmup`), and input_bound = 1 - in_memory / fed: the fraction of the fed step's time lost."""
    mesh = parallel.make_mesh()
    with tempfile.TemporaryDirectory(prefix="bench-input-bound-") as scratch:
        builder = _small_world(config, scratch)
        compiled, state, batch = train_step.build_step(config, config.batch_size, mesh)
        holder = [state]

        def in_memory() -> None:
            holder[0], metrics = compiled(holder[0], batch)
            jax.block_until_ready(metrics)

        started = time.perf_counter()
        host_batches = input_pipeline.train_batches(
            builder,
            config.batch_size,
            seed=config.seed,
            workers=config.data.input_workers,
            augment=augment.AugmentConfig.from_config(
                config.augment, config.model.sound.time_steps
            ),
        )
        fed = parallel.prefetch_to_mesh(host_batches, mesh)

        def from_pipeline() -> None:
            holder[0], metrics = compiled(holder[0], next(fed))
            jax.block_until_ready(metrics)

        from_pipeline()
        first_batch_s = time.perf_counter() - started
        for run in (in_memory, from_pipeline):
            for _ in range(warmup):
                run()
        # Alternated halves, so that a change in the machine's load falls on both.
        memory_s, fed_s = [], []
        for _ in range(2):
            memory_s.append(_seconds_per_step(in_memory, steps // 2))
            fed_s.append(_seconds_per_step(from_pipeline, steps // 2))
        host_batches.close()
    in_memory_s, pipeline_s = float(np.mean(memory_s)), float(np.mean(fed_s))
    return {
        "batch_per_stream": config.batch_size,
        "input_workers": config.data.input_workers,
        "step_in_memory_s": in_memory_s,
        "step_fed_s": pipeline_s,
        "first_batch_s": first_batch_s,
        "input_bound": max(0.0, 1.0 - in_memory_s / pipeline_s),
    }
