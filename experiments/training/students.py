"""The student training loop: both pair streams each step, orbax checkpoints with exact resume, logging,
periodic validation retrieval, and a guard against non-finite steps."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
from absl import logging

from alignment import parallel, streams
from alignment.models import create_model
from alignment.train_state import TrainState
from data_pipelines import augment, input_pipeline
from data_pipelines.builders.teacher_probs import has_teacher_probs
from experiments.evaluation import suite, validation
from experiments.evaluation.context import EvalContext
from experiments.runtime import checkpointing, datasets, preemption, restore, run_config
from experiments.runtime.logs import Progress, ScalarWriter
from experiments.runtime.optimizer import make_optimizer
from experiments.runtime.workdir_lock import WorkdirLock

# Above this fraction of never-active units at the validated layer, the representation is collapsing.
DEAD_UNITS_WARNING = 0.5


class NonFiniteLossError(FloatingPointError):
    """A training step produced a non-finite loss or gradient."""


def check_config(config: Any) -> None:
    """Cross-field checks that would otherwise fail deep inside compilation."""
    restore.check_teacher_classes(config)
    # The other shapes are references to the data's (configs/base.py); the tower's window may be shorter.
    m, d = config.model, config.data
    if m.sound.time_steps > d.audio.time_steps:
        raise ValueError(
            f"config.model.sound.time_steps={m.sound.time_steps} but the stored clips have "
            f"config.data.audio.time_steps={d.audio.time_steps} frames: the sound window cannot be "
            "longer than the clip"
        )
    if config.batch_size % jax.device_count():
        raise ValueError(
            f"config.batch_size={config.batch_size} must be a multiple of the {jax.device_count()} devices"
        )


def _raise_nonfinite(step: int, metrics: dict[str, float]) -> None:
    terms = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "finite")
    raise NonFiniteLossError(
        f"step {step}: non-finite loss or gradient ({terms}); the state was left unchanged and the "
        "last checkpoint is intact. Lower the learning rate, or set --config.loss.skip_nonfinite=True "
        "to skip such steps."
    )


class _MetricsBuffer:
    """Device-side metrics of the steps since the last flush; fetched in one transfer on log steps."""

    def __init__(self):
        self._steps: list[int] = []
        self._metrics: list[dict[str, jax.Array]] = []

    def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
        self._steps.append(step)
        self._metrics.append(metrics)

    def flush(self, skip_nonfinite: bool) -> tuple[dict[str, float], int]:
        """Mean of the finite steps' metrics and the count of non-finite ones; raises on a non-finite
        step unless skipping is allowed."""
        host = jax.device_get(self._metrics)
        steps, self._steps, self._metrics = self._steps, [], []
        finite = [m for m in host if m["finite"] > 0]
        bad = [(s, m) for s, m in zip(steps, host, strict=True) if m["finite"] <= 0]
        if bad and not skip_nonfinite:
            _raise_nonfinite(bad[0][0], {k: float(v) for k, v in bad[0][1].items()})
        keys = host[0].keys() if host else ()
        means = {
            k: float(np.mean([m[k] for m in finite])) for k in keys if finite and k != "finite"
        }
        return means, len(bad)


def train(config: Any, workdir: str, config_file: str | None = None) -> TrainState:
    """Trains the students of `config` in `workdir`, resuming from its latest complete checkpoint.

    Process 0 holds the workdir's lock for the whole run, so a second run on the same workdir stops at
    once, and saves the config as <workdir>/config.json (recording `config_file`, the file it came
    from). Knobs that follow the data set (class counts, num_epochs) are resolved from the built data
    set first (datasets.resolve_config). Returns the final TrainState (replicated over all devices).

    Raises preemption.Preempted after SIGTERM (or a multi-host preemption notice), once the checkpoint
    of the step it stopped at is saved.
    """
    builder = datasets.open_built(config.data)
    resolved = datasets.resolve_config(config, builder)
    check_config(resolved)
    if jax.process_index() != 0:
        return _train(resolved, workdir, builder)
    with WorkdirLock(workdir):
        run_config.save(workdir, config, config_file)
        return _train(resolved, workdir, builder)


def _train(config: Any, workdir: str, builder) -> TrainState:
    mesh = parallel.make_mesh()
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)

    needs_teacher = config.loss.objective in ("transfer", "both")
    has_probs = needs_teacher and _has_teacher_probs(builder)
    teacher_module = teacher_params = None
    if needs_teacher and not has_probs:
        teacher_module, teacher_params = restore.restore_teacher(
            config, restore.teacher_dir(config, workdir), mesh
        )

    manager = checkpointing.make_manager(
        restore.subdir(workdir, restore.CHECKPOINT_SUBDIR), keep=config.keep_checkpoints
    )
    abstract = restore.abstract_train_state(model, optimizer)
    latest = manager.latest_step()
    if latest is not None:
        state, meta = checkpointing.restore(manager, abstract, mesh, latest)
        logging.info("train: resumed from step %d in %s", latest, manager.directory)
    else:
        example = streams.example_batch(config.model)
        state = parallel.create_train_state(
            model, optimizer, jax.random.PRNGKey(config.seed), example, mesh
        )
        if config.init_vision_from_teacher:
            state = _vision_from_teacher(config, workdir, state, mesh)
    start = int(jax.device_get(state.step))
    if start >= config.total_steps:
        manager.close()
        return state
    # Model selection needs held-out rows: on the test split it would pick the checkpoint by the test.
    selects = config.eval_every and "validation" in builder.info.splits
    best = None
    if selects:
        best_dir = restore.subdir(workdir, restore.BEST_SUBDIR)
        best = _BestCheckpoint(best_dir, config.get("best_tolerance", 0.0))
    if config.eval_every and not selects:
        logging.info(
            "train: no validation split: validating on test rows, keeping no best checkpoint"
        )

    step_fn = parallel.make_train_step(model, optimizer, config.loss, mesh, teacher_module)
    evaluation = EvalContext(config, builder, workdir, mesh=mesh) if config.eval_every else None
    embed_fn = parallel.make_embed_fn(model, mesh)
    batches = input_pipeline.train_batches(
        builder,
        config.batch_size,
        seed=config.seed,
        start_step=start,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        workers=config.data.input_workers,
        augment=augment.AugmentConfig.from_config(config.augment, config.model.sound.time_steps),
    )
    writer = ScalarWriter(workdir, resumed_step=start)
    if start == 0:
        writer.write_config(config, metrics=("loss", validation.SELECTION_METRIC))
    progress = Progress("train", config.total_steps, start, examples_per_step=2 * config.batch_size)
    buffer = _MetricsBuffer()
    skipped = int(jax.device_get(state.nonfinite_count))
    meta = {"config": json.loads(config.to_json_best_effort())}
    # SIGTERM, or a multi-host job's preemption notice, ends the loop with a checkpoint at a step every
    # process agrees on (runtime/preemption.py), instead of killing the run between checkpoints.
    preempted_at = 0
    with preemption.Watch(start) as watch:
        for step in range(start, config.total_steps):
            batch = parallel.shard_batch(next(batches), mesh)
            state, metrics = step_fn(state, batch, teacher_params)
            buffer.add(step, metrics)
            done = step + 1
            last = done == config.total_steps
            halt = done == config.halt_at_step
            preempted = watch.reached(done) and not last
            save_now = done % config.checkpoint_every == 0 or last or halt or preempted
            # Metrics are fetched (one host sync) only on log steps and before every save, so a
            # non-finite step is reported before anything after it could be written.
            if done % config.log_every == 0 or save_now:
                means, bad = buffer.flush(config.loss.skip_nonfinite)
                skipped += bad
                rates = progress.update(done, {k: v for k, v in means.items() if k != "grad_norm"})
                writer.write(done, {**means, **rates, "skipped_steps": skipped})
            # Validation embeds host-local arrays, so it runs in single-process jobs only.
            if (
                config.eval_every
                and jax.process_count() == 1
                and (done % config.eval_every == 0 or last)
            ):
                assert evaluation is not None
                evaluation.use_params(model, state.params, done, embed_fn)
                (row,) = suite.run(evaluation, ["validation"])
                scores = dict(row.fields)
                writer.write(done, scores)
                logging.info("validate %s", " | ".join(f"{k} {v:.3g}" for k, v in scores.items()))
                if scores[validation.DEAD_UNITS] > DEAD_UNITS_WARNING:
                    logging.warning(
                        "%.0f%% of the %s units are never active on the validation items: the "
                        "representation is collapsing (lower the learning rate, or train longer with "
                        "more augmentation)",
                        100 * scores[validation.DEAD_UNITS],
                        config.eval_layers[0],
                    )
                if best is not None:
                    best.offer(done, scores[validation.SELECTION_METRIC], state, meta)
            if save_now:
                checkpointing.save(manager, done, state, {**meta, "data_position": done})
            if halt:
                logging.info("train: halted at step %d; rerun the same command to resume", done)
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
            "train: preempted (%s) at step %d; saved; rerun the same command to resume",
            watch.notice,
            preempted_at,
        )
        raise preemption.Preempted(preempted_at, watch.notice)
    return state


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


def _vision_from_teacher(config: Any, workdir: str, state: TrainState, mesh) -> TrainState:
    """Starts the vision tower's conv layers ("features") from the teacher's, as a student AlexNet starts
    from ImageNet weights: the image student then begins by seeing what the teacher sees. A fresh conv
    stack (model.vision.fresh_channels) keeps its random start."""
    norms = (config.teacher.normalization, config.model.vision.normalization)
    if norms[0] != norms[1]:
        raise ValueError(
            f"config.init_vision_from_teacher: the teacher reads pixels normalized as {norms[0]!r}, "
            f"the vision tower as {norms[1]!r}; set config.model.vision.normalization={norms[0]!r} "
            "or --config.init_vision_from_teacher=False"
        )
    conv_norm = config.model.vision.get("conv_norm", "none")
    if conv_norm != "none":
        raise ValueError(
            f"config.init_vision_from_teacher: the vision tower normalizes its convs ({conv_norm!r}), "
            "the teacher's do not; set --config.init_vision_from_teacher=False or "
            "--config.model.vision.conv_norm=none"
        )
    _, teacher_params = restore.restore_teacher(config, restore.teacher_dir(config, workdir), mesh)
    ours, theirs = state.params["vision"]["features"], teacher_params["features"]
    shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
    if shapes(ours) != shapes(theirs):
        raise ValueError(
            f"config.init_vision_from_teacher: the teacher's conv layers {shapes(theirs)} differ from "
            f"the vision tower's {shapes(ours)}; give config.teacher and config.model.vision the same "
            "channels and kernels, or set --config.init_vision_from_teacher=False"
        )
    vision = {**state.params["vision"], "features": theirs}
    return state.replace(params={**state.params, "vision": vision})


def _has_teacher_probs(builder) -> bool:
    return "teacher_probs" in builder.info.features or has_teacher_probs(
        os.fspath(builder.data_dir), "train"
    )
