"""The one training loop. Every model the project trains (the teacher, the students) is a Task: what
differs (its state, step, batches and validation); the loop owns what they share: resuming from the
latest complete orbax checkpoint, batches read by index from that step on, checkpoints (the latest, and
the best by validation), SIGTERM and multi-host preemption notices, metrics.jsonl and TensorBoard,
progress lines, the non-finite guard and the workdir lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from absl import logging

from alignment import parallel
from alignment.train_state import TrainState
from experiments.runtime import checkpointing, preemption
from experiments.runtime.logs import Progress, ScalarWriter
from experiments.runtime.workdir_lock import WorkdirLock


class NonFiniteLossError(FloatingPointError):
    """A training step produced a non-finite loss or gradient."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a task's loop logs, saves, validates and stops (steps; 0 = never)."""

    total_steps: int
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int
    eval_every: int = 0
    halt_at_step: int = 0
    skip_nonfinite: bool = False
    # "best" is the latest state whose validation score is within this fraction of the lowest so far.
    best_tolerance: float = 0.0


@dataclasses.dataclass
class Task:
    """What a training task brings to the loop.

    name: its log lines' prefix ("train", "teacher").
    logdir: where metrics.jsonl, the event files and the lock go.
    checkpoint_dir / best_dir: the latest states / the best state by validation (None: none kept).
    abstract_state: the TrainState's shapes (the restore target); init_state: a fresh one on the mesh.
    batches(start_step): this host's batches from that step on, each a pure function of its step.
    step(state, batch on the mesh) -> (state, metrics with "loss" and "finite"): jitted, state donated.
    validate(state, step) -> scores, lower is better for `selection_metric`; None: no validation.
    meta: JSON saved with every checkpoint; on_start: run once on process 0, under the lock.
    """

    name: str
    logdir: str
    checkpoint_dir: str
    best_dir: str | None
    schedule: Schedule
    abstract_state: TrainState
    init_state: Callable[[], TrainState]
    batches: Callable[[int], Iterator[Any]]
    step: Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]
    mesh: Any
    examples_per_step: int
    validate: Callable[[TrainState, int], dict[str, float]] | None = None
    selection_metric: str = ""
    meta: dict = dataclasses.field(default_factory=dict)
    config: Any = None
    nonfinite_hint: str = "Lower the learning rate"
    on_start: Callable[[], None] | None = None


def run(task: Task) -> TrainState:
    """Trains `task` to schedule.total_steps, resuming from its latest complete checkpoint; returns
    the final TrainState (replicated).

    Raises preemption.Preempted after SIGTERM (or a multi-host preemption notice), once the checkpoint
    of the step it stopped at is saved; NonFiniteLossError at a non-finite step (unless skipped), the
    last checkpoint intact.
    """
    if jax.process_index() != 0:
        return _run(task)
    with WorkdirLock(task.logdir):
        if task.on_start is not None:
            task.on_start()
        return _run(task)


def _run(task: Task) -> TrainState:
    schedule = task.schedule
    manager = checkpointing.make_manager(task.checkpoint_dir, keep=schedule.keep_checkpoints)
    latest = manager.latest_step()
    if latest is not None:
        state, _ = checkpointing.restore(manager, task.abstract_state, task.mesh, latest)
        logging.info("%s: resumed from step %d in %s", task.name, latest, manager.directory)
    else:
        state = task.init_state()
    start = int(jax.device_get(state.step))
    if start >= schedule.total_steps:
        manager.close()
        return state
    best = _BestCheckpoint(task.best_dir, schedule.best_tolerance) if task.best_dir else None
    writer = ScalarWriter(task.logdir, resumed_step=start)
    if start == 0 and task.config is not None:
        writer.write_config(task.config, metrics=("loss", task.selection_metric or "loss"))
    progress = Progress(task.name, schedule.total_steps, start, task.examples_per_step)
    buffer = _MetricsBuffer()
    skipped = int(jax.device_get(state.nonfinite_count))
    preempted_at = 0
    # SIGTERM, or a multi-host job's preemption notice, ends the loop with a checkpoint at a step every
    # process agrees on (runtime/preemption.py), instead of killing the run between checkpoints.
    # The input's worker processes end with the loop, whichever way it ends.
    with preemption.Watch(start) as watch, contextlib.closing(task.batches(start)) as host_batches:
        batches = parallel.prefetch_to_mesh(host_batches, task.mesh)
        for step in range(start, schedule.total_steps):
            state, metrics = task.step(state, next(batches))
            buffer.add(step, metrics)
            done = step + 1
            last = done == schedule.total_steps
            halt = done == schedule.halt_at_step
            preempted = watch.reached(done) and not last
            save_now = done % schedule.checkpoint_every == 0 or last or halt or preempted
            # Metrics are fetched (one host sync) only on log steps and before every save, so a
            # non-finite step is reported before anything after it could be written.
            if done % schedule.log_every == 0 or save_now:
                means, bad = buffer.flush(schedule.skip_nonfinite, task.nonfinite_hint)
                skipped += bad
                rates = progress.update(done, {k: v for k, v in means.items() if k != "grad_norm"})
                writer.write(done, {**means, **rates, "skipped_steps": skipped})
            # Validation embeds host-local arrays, so it runs in single-process jobs only.
            if (
                task.validate is not None
                and schedule.eval_every
                and jax.process_count() == 1
                and (done % schedule.eval_every == 0 or last)
            ):
                scores = task.validate(state, done)
                writer.write(done, scores)
                logging.info(
                    "%s: validate %s",
                    task.name,
                    " | ".join(f"{k} {v:.3g}" for k, v in scores.items()),
                )
                if best is not None:
                    best.offer(done, scores[task.selection_metric], state, task.meta)
            if save_now:
                checkpointing.save(manager, done, state, {**task.meta, "data_position": done})
            if halt:
                logging.info(
                    "%s: halted at step %d; rerun the same command to resume", task.name, done
                )
            if preempted:
                preempted_at = done
            if halt or preempted:
                break
        # Still watching: a SIGTERM now must not cut off the saves in flight.
        manager.wait_until_finished()
        manager.close()
        if best is not None:
            best.close()
    writer.close()
    if preempted_at:
        logging.info(
            "%s: preempted (%s) at step %d; saved; rerun the same command to resume",
            task.name,
            watch.notice,
            preempted_at,
        )
        raise preemption.Preempted(preempted_at, watch.notice)
    return state


def restore_best(task: Task) -> TrainState | None:
    """The task's best state by validation, or None when it kept none."""
    if task.best_dir is None:
        return None
    manager = checkpointing.make_manager(task.best_dir, keep=1, async_save=False)
    try:
        if manager.latest_step() is None:
            return None
        return checkpointing.restore(manager, task.abstract_state, task.mesh)[0]
    finally:
        manager.close()


class _MetricsBuffer:
    """Device-side metrics of the steps since the last flush; fetched in one transfer on log steps."""

    def __init__(self):
        self._steps: list[int] = []
        self._metrics: list[dict[str, jax.Array]] = []

    def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
        self._steps.append(step)
        self._metrics.append(metrics)

    def flush(self, skip_nonfinite: bool, hint: str) -> tuple[dict[str, float], int]:
        """Mean of the finite steps' metrics and the count of non-finite ones; raises on a non-finite
        step unless skipping is allowed."""
        host = jax.device_get(self._metrics)
        steps, self._steps, self._metrics = self._steps, [], []
        finite = [m for m in host if m["finite"] > 0]
        bad = [(s, m) for s, m in zip(steps, host, strict=True) if m["finite"] <= 0]
        if bad and not skip_nonfinite:
            step, values = bad[0]
            terms = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items() if k != "finite")
            raise NonFiniteLossError(
                f"step {step}: non-finite loss or gradient ({terms}); the state was left unchanged "
                f"and the last checkpoint is intact. {hint}."
            )
        keys = host[0].keys() if host else ()
        means = {
            k: float(np.mean([m[k] for m in finite])) for k in keys if finite and k != "finite"
        }
        return means, len(bad)


class _BestCheckpoint:
    """The latest state whose validation score is within `tolerance` (relative) of the lowest score so
    far, in its own directory. With tolerance 0 it is the lowest (the latest of equals).

    Near the end of a run the validation score moves within its own noise, and the lowest of a flat
    stretch is a lucky draw of the validation items, not a better state; a tolerance keeps the
    longer-trained state there and an earlier one only when later scores rise beyond it.
    The lowest score is kept in the checkpoint's metadata, so a resumed run competes with the best it had.
    """

    def __init__(self, directory: str, tolerance: float = 0.0):
        self.manager = checkpointing.make_manager(directory, keep=1)
        self.tolerance = tolerance
        step = self.manager.latest_step()
        meta = checkpointing.read_meta(self.manager, step) if step is not None else {}
        self.lowest = float(meta.get("lowest", meta.get("score", np.inf)))

    def offer(self, step: int, score: float, state: TrainState, meta: dict) -> None:
        if score <= self.lowest * (1.0 + self.tolerance):
            self.lowest = min(self.lowest, score)
            extra = {"score": score, "lowest": self.lowest, "step": step}
            checkpointing.save(self.manager, step, state, {**meta, **extra})

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
