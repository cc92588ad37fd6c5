"""A run's workdir and how its models come back: the student's TrainState (latest or best checkpoint)
and the teacher, each restored through checkpointing.restore onto any mesh (a checkpoint saved with
the state sharded over 'fsdp' restores replicated, and the other way round).

    <workdir>/config.json    the run's config (run_config)
    <workdir>/checkpoints/   the latest student checkpoints (orbax steps)
    <workdir>/best/          the student state with the best validation score (when training validates)
    <workdir>/teacher/       the image teacher (unless config.teacher.path names another)
    <workdir>/teacher_training/   the teacher's training run: checkpoints/, best/, metrics.jsonl
    <workdir>/eval/          evaluation output
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from alignment.losses import with_loss_params
from alignment.models import Teacher, TriModalNet, create_model, create_teacher, init_params
from alignment.train_state import TrainState
from data_pipelines import paths
from experiments.runtime import checkpointing
from experiments.runtime.optimizer import make_optimizer

CHECKPOINT_SUBDIR = "checkpoints"
BEST_SUBDIR = "best"
TEACHER_SUBDIR = "teacher"
TEACHER_TRAINING_SUBDIR = "teacher_training"
EVAL_SUBDIR = "eval"


def abstract_train_state(model: TriModalNet, optimizer, loss_cfg: Any = None) -> TrainState:
    """Shapes and dtypes of the TrainState (nothing allocated): the restore target and shape check.
    loss_cfg: config.loss, whose learned scalars are parameters too (losses.with_loss_params)."""

    def init():
        params = with_loss_params(init_params(model, jax.random.PRNGKey(0)), loss_cfg)
        return TrainState(
            step=np.zeros((), np.int32),
            params=params,
            opt_state=optimizer.init(params),
            rng=jax.random.PRNGKey(0),
            nonfinite_count=np.zeros((), np.int32),
        )

    return jax.eval_shape(init)


def student_abstract_state(config: Any) -> tuple[TriModalNet, TrainState]:
    """(model, abstract TrainState) of config.model and config.optimizer."""
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    return model, abstract_train_state(model, optimizer, config.loss)


def student_dir(config: Any, workdir: str) -> str:
    """Where evaluation reads: <workdir>/best when config.eval_checkpoint == "best" and training kept a
    best checkpoint (it validates), else <workdir>/checkpoints (the latest)."""
    if config.eval_checkpoint not in ("best", "latest"):
        raise ValueError(
            f"config.eval_checkpoint={config.eval_checkpoint!r}: expected best or latest"
        )
    best = paths.as_path(workdir) / BEST_SUBDIR
    if config.eval_checkpoint == "best" and best.is_dir() and any(best.iterdir()):
        return str(best)
    return subdir(workdir, CHECKPOINT_SUBDIR)


def subdir(workdir: str, name: str) -> str:
    """<workdir>/<name> for a local workdir or a URI (gs://bucket/run/<name>)."""
    return str(paths.as_path(workdir) / name)


def latest_student_step(workdir: str) -> int | None:
    """The step of the latest student checkpoint in <workdir>/checkpoints, or None when it has none."""
    directory = subdir(workdir, CHECKPOINT_SUBDIR)
    if not paths.as_path(directory).is_dir():
        return None
    manager = checkpointing.make_manager(directory, async_save=False)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def restore_student(
    config: Any, workdir: str, mesh: Mesh, directory: str | None = None, step: int | None = None
) -> tuple[TriModalNet, TrainState, dict]:
    """(model, TrainState on `mesh` (replicated, or sharded over its 'fsdp' axis), metadata) of the
    checkpoint in `directory` (default: student_dir), at `step` (default: its latest)."""
    model, abstract = student_abstract_state(config)
    directory = directory or student_dir(config, workdir)
    if not paths.as_path(directory).is_dir():
        raise FileNotFoundError(
            f"no checkpoints in {directory}: train first with `python -m experiments.train "
            f"--config=<config> --workdir={workdir}`"
        )
    state, meta = checkpointing.restore_directory(directory, abstract, mesh, step)
    return model, state, meta


def teacher_dir(config: Any, workdir: str | None) -> str:
    """Where the teacher checkpoint lives: config.teacher.path (source=checkpoint), else <workdir>/teacher."""
    if config.teacher.source == "checkpoint" and config.teacher.path:
        return config.teacher.path
    if workdir is None:
        return config.teacher.path
    return subdir(workdir, TEACHER_SUBDIR)


def restore_teacher(config: Any, directory: str, mesh: Mesh) -> tuple[Teacher, Any]:
    """The teacher module of config.teacher and its parameters from `directory`, replicated on `mesh`."""
    teacher = create_teacher(config.teacher)
    if not directory or not paths.as_path(directory).is_dir():
        raise FileNotFoundError(
            f"no teacher checkpoint at {directory}: train one with `python -m experiments.train_teacher "
            "--config=<config> --workdir=<workdir>` or set --config.teacher.path"
        )
    abstract = jax.eval_shape(
        lambda: teacher.init(jax.random.PRNGKey(0), teacher.example_inputs())["params"]
    )
    params, _ = checkpointing.restore_directory(directory, abstract, mesh)
    return teacher, params


def save_teacher(directory: str, params: Any, meta: dict) -> None:
    """Writes the teacher's parameters to `directory`, replacing the teacher there."""
    manager = checkpointing.make_manager(directory, keep=1, async_save=False)
    for step in manager.all_steps():
        manager.delete(step)
    checkpointing.save(manager, 0, params, meta)
    manager.wait_until_finished()
    manager.close()


def check_teacher_classes(config: Any) -> None:
    """The students' logits are matched to the teacher's distribution: their widths must agree."""
    if config.teacher.num_classes != config.model.num_classes:
        raise ValueError(
            f"the teacher has {config.teacher.num_classes} classes but the shared head predicts "
            f"{config.model.num_classes}: set --config.model.num_classes={config.teacher.num_classes}"
        )
