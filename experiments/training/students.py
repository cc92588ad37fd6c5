"""The students' task of the training loop (loop.py): both pair streams each step, validation retrieval
and the best checkpoint by it, the vision tower started from the teacher's convs."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
from absl import logging

from alignment import losses, parallel, streams
from alignment.models import create_model
from alignment.train_state import TrainState
from data_pipelines import augment, input_pipeline
from data_pipelines.builders.teacher_probs import has_teacher_probs
from experiments.evaluation import suite, validation
from experiments.evaluation.context import EvalContext
from experiments.runtime import datasets, restore, run_config
from experiments.runtime.optimizer import make_optimizer
from experiments.training import loop

# Above this fraction of never-active units at the validated layer, the representation is collapsing.
DEAD_UNITS_WARNING = 0.5


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
    split = jax.device_count() * config.train.accumulate
    if config.batch_size % split:
        raise ValueError(
            f"config.batch_size={config.batch_size} must be a multiple of the {jax.device_count()} "
            f"devices x config.train.accumulate={config.train.accumulate} micro-batches ({split})"
        )


def train(config: Any, workdir: str, config_file: str | None = None) -> TrainState:
    """Trains the students of `config` in `workdir`, resuming from its latest complete checkpoint.

    Process 0 holds the workdir's lock for the whole run, so a second run on the same workdir stops at
    once, and saves the config as <workdir>/config.json (recording `config_file`, the file it came
    from). Knobs that follow the data set (class counts, num_epochs) are resolved from the built data
    set first (datasets.resolve_config). Returns the final TrainState, laid out on the mesh (params and
    optimizer state sharded over 'fsdp' when config.mesh.fsdp > 1, else replicated).

    Raises preemption.Preempted after SIGTERM (or a multi-host preemption notice), once the checkpoint
    of the step it stopped at is saved.
    """
    builder = datasets.open_built(config.data)
    resolved = datasets.resolve_config(config, builder)
    check_config(resolved)
    suite.check_config(resolved)
    return _train(resolved, workdir, builder, lambda: run_config.save(workdir, config, config_file))


def _train(config: Any, workdir: str, builder, on_start=None) -> TrainState:
    mesh = parallel.make_mesh(fsdp=config.mesh.fsdp)
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)

    needs_teacher = losses.needs_teacher_probs(config.loss)
    has_probs = needs_teacher and _has_teacher_probs(builder)
    teacher_module = teacher_params = None
    if needs_teacher and not has_probs:
        teacher_module, teacher_params = restore.restore_teacher(
            config, restore.teacher_dir(config, workdir), mesh
        )

    def init_state() -> TrainState:
        example = streams.example_batch(config.model)
        state = parallel.create_train_state(
            model, optimizer, jax.random.PRNGKey(config.seed), example, mesh, config.loss
        )
        if config.init_vision_from_teacher:
            state = _vision_from_teacher(config, workdir, state, mesh)
            # The teacher's convolutions arrive replicated: back to the state's layout, so that the
            # first step compiles for the layout of every later one.
            state = jax.device_put(state, parallel.state_shardings(state, mesh))
        return state

    # Model selection needs held-out rows: on the test split it would pick the checkpoint by the test.
    selects = bool(config.eval_every) and "validation" in builder.info.splits
    if config.eval_every and not selects:
        logging.info(
            "train: no validation split: validating on test rows, keeping no best checkpoint"
        )
    step_fn = parallel.make_train_step(
        model, optimizer, config.loss, mesh, teacher_module, accumulate=config.train.accumulate
    )
    augment_cfg = augment.AugmentConfig.from_config(config.augment, config.model.sound.time_steps)

    def batches(start: int):
        return input_pipeline.train_batches(
            builder,
            config.batch_size,
            seed=config.seed,
            start_step=start,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            workers=config.data.input_workers,
            augment=augment_cfg,
        )

    task = loop.Task(
        name="train",
        logdir=workdir,
        checkpoint_dir=restore.subdir(workdir, restore.CHECKPOINT_SUBDIR),
        best_dir=restore.subdir(workdir, restore.BEST_SUBDIR) if selects else None,
        schedule=loop.Schedule(
            total_steps=config.total_steps,
            log_every=config.log_every,
            checkpoint_every=config.checkpoint_every,
            keep_checkpoints=config.keep_checkpoints,
            eval_every=config.eval_every,
            halt_at_step=config.halt_at_step,
            skip_nonfinite=config.loss.skip_nonfinite,
            best_tolerance=config.best_tolerance,
        ),
        abstract_state=restore.abstract_train_state(model, optimizer, config.loss),
        init_state=init_state,
        batches=batches,
        step=lambda state, batch: step_fn(state, batch, teacher_params),
        mesh=mesh,
        examples_per_step=2 * config.batch_size,
        validate=_validator(config, builder, workdir, model, mesh) if config.eval_every else None,
        selection_metric=validation.SELECTION_METRIC,
        meta={"config": json.loads(config.to_json_best_effort())},
        config=config,
        nonfinite_hint=(
            "Lower the learning rate, or set --config.loss.skip_nonfinite=True to skip such steps"
        ),
        on_start=on_start,
    )
    return loop.run(task)


def _validator(config: Any, builder, workdir: str, model, mesh):
    """(state, step) -> the validation evaluator's scores of the state's parameters."""
    evaluation = EvalContext(config, builder, workdir, mesh=mesh)
    embed_fn = parallel.make_embed_fn(model, mesh)

    def validate(state: TrainState, step: int) -> dict[str, float]:
        evaluation.use_params(model, state.params, step, embed_fn)
        scores = suite.validate(evaluation)
        if scores[validation.DEAD_UNITS] > DEAD_UNITS_WARNING:
            logging.warning(
                "%.0f%% of the %s units are never active on the validation items: the "
                "representation is collapsing (lower the learning rate, or train longer with "
                "more augmentation)",
                100 * scores[validation.DEAD_UNITS],
                config.eval_layers[0],
            )
        return scores

    return validate


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
    conv_norm = config.model.vision.conv_norm
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
