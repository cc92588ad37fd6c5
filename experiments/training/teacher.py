"""The image teacher: its task of the training loop (fine labels, else labels, of the train split's
images), the torchvision import, and its class probabilities written beside a built data set so that
student training never runs it. Every split is read by row index, a batch at a time: no step holds more
than a batch of images, whatever the split's size."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from alignment import parallel
from alignment.models import Teacher, create_teacher
from data_pipelines import augment, input_pipeline, paths, records
from data_pipelines.builders.teacher_probs import TeacherProbsWriter
from experiments.runtime import datasets, restore
from experiments.runtime.datasets import NO_LABELS
from experiments.runtime.logs import Progress
from experiments.runtime.optimizer import make_optimizer
from experiments.training import loop, teacher_import

# Rows per prediction batch (rounded down to a multiple of the devices).
PREDICT_BATCH = 512
# Train images scored for the train accuracy line.
TRAIN_ACCURACY_ROWS = 5000
SELECTION_METRIC = "top1_error"


def label_feature(builder) -> str:
    """The stored feature the teacher learns: "fine_label" when the data set names fine classes, else
    "label" (label_names.json)."""
    fine, coarse = datasets.class_counts(builder)
    if not fine and not coarse:
        raise ValueError(NO_LABELS)
    return "fine_label" if fine else "label"


def teacher_task(config: Any, builder, workdir: str, mesh) -> tuple[Teacher, loop.Task]:
    """The teacher's task: its TrainState (config.teacher.optimizer), batches of the train split's
    images and their classes (config.teacher.augment), top-1 validation on the validation split, and
    checkpoints under <workdir>/teacher_training."""
    cfg = config.teacher
    teacher = create_teacher(cfg)
    label = label_feature(builder)
    optimizer = make_optimizer(cfg.optimizer, cfg.total_steps)

    def params_init(rng: jax.Array) -> Any:
        return teacher.init(rng, teacher.example_inputs())["params"]

    init = parallel.train_state_init(params_init, optimizer)
    rng = jax.random.PRNGKey(config.seed)
    augment_cfg = augment.AugmentConfig.from_config(cfg.augment)
    rundir = restore.subdir(workdir, restore.TEACHER_TRAINING_SUBDIR)
    has_validation = "validation" in builder.info.splits
    if not has_validation:
        logging.info("teacher: no validation split: keeping no best checkpoint")

    def batches(start: int) -> Iterator[dict[str, np.ndarray]]:
        return input_pipeline.image_batches(
            builder,
            cfg.batch_size,
            label,
            seed=config.seed,
            start_step=start,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            workers=config.data.input_workers,
            augment=None if augment_cfg.is_identity(0) else augment_cfg,
        )

    def validate(state, step: int) -> dict[str, float]:
        del step
        top1 = accuracy(teacher, state.params, builder, "validation", label, mesh)
        return {"top1": top1, SELECTION_METRIC: 1.0 - top1}

    task = loop.Task(
        name="teacher",
        logdir=rundir,
        checkpoint_dir=os.path.join(rundir, restore.CHECKPOINT_SUBDIR),
        best_dir=os.path.join(rundir, restore.BEST_SUBDIR) if has_validation else None,
        schedule=loop.Schedule(
            total_steps=cfg.total_steps,
            log_every=config.log_every,
            checkpoint_every=config.checkpoint_every,
            keep_checkpoints=config.keep_checkpoints,
            eval_every=cfg.eval_every if has_validation else 0,
        ),
        abstract_state=jax.eval_shape(init, rng),
        init_state=lambda: parallel.init_state_on_mesh(params_init, optimizer, rng, mesh),
        batches=batches,
        step=parallel.make_classifier_step(teacher, optimizer, mesh),
        mesh=mesh,
        examples_per_step=cfg.batch_size,
        validate=validate,
        selection_metric=SELECTION_METRIC,
        meta={"teacher": json.loads(cfg.to_json_best_effort()), "label": label},
        config=config,
    )
    return teacher, task


def train_teacher(
    config: Any, builder, workdir: str, mesh
) -> tuple[Teacher, Any, dict[str, float]]:
    """Trains the teacher on the train split's fine labels (its labels when it has none), resuming
    from <workdir>/teacher_training; returns (module, params, metrics): the best state by validation
    top-1 when the data set has a validation split, else the last.

    metrics: top-1 accuracy on the first TRAIN_ACCURACY_ROWS train images and on the validation and
    test splits (single-process jobs; the classes of the labelled images only).
    """
    teacher, task = teacher_task(config, builder, workdir, mesh)
    label = task.meta["label"]
    images = input_pipeline.count_rows(builder, "train", "has_image")
    logging.info(
        "teacher: %d train images, %d classes (%s)", images, config.teacher.num_classes, label
    )
    state = loop.run(task)
    params = (loop.restore_best(task) or state).params
    metrics: dict[str, float] = {}
    if jax.process_count() == 1:
        train_rows = input_pipeline.image_rows(builder, "train")[:TRAIN_ACCURACY_ROWS]
        metrics["train_top1"] = accuracy(teacher, params, builder, "train", label, mesh, train_rows)
        for split in ("validation", "test"):
            if split in builder.info.splits:
                metrics[f"{split}_top1"] = accuracy(teacher, params, builder, split, label, mesh)
    return teacher, params, metrics


def predict_batches(
    teacher: Teacher,
    params: Any,
    builder,
    split: str,
    rows: np.ndarray,
    mesh,
    extra: tuple[str, ...] = (),
    progress: str | None = None,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The teacher's softmax of the images of the split's `rows`, a batch at a time, in order:
    yields (float32 [n, num_classes], {name: [n, ...]} of the `extra` stored features of those rows).

    Rows are read by index PREDICT_BATCH at a time, padded to a whole batch for the mesh; with
    `progress`, a progress line under that name about every tenth of the batches.
    """
    batch = max(jax.device_count(), PREDICT_BATCH - PREDICT_BATCH % jax.device_count())
    split_records = records.Records(builder, split)
    count = -(-len(rows) // batch)
    lines = Progress(progress, count, examples_per_step=batch) if progress else None
    apply = jax.jit(lambda p, x: jax.nn.softmax(teacher.apply({"params": p}, x)))
    sharding = NamedSharding(mesh, PartitionSpec(parallel.AXIS))
    for index, start in enumerate(range(0, len(rows), batch)):
        chunk = split_records.read(rows[start : start + batch], ("image", *extra))
        images = chunk.pop("image")
        padded = np.zeros((batch, *images.shape[1:]), images.dtype)
        padded[: len(images)] = images
        probs = apply(params, jax.device_put(padded, sharding))
        yield np.asarray(jax.device_get(probs))[: len(images)], chunk
        done = index + 1
        if lines is not None and (done % max(1, count // 10) == 0 or done == count):
            lines.update(done)


def accuracy(
    teacher: Teacher,
    params: Any,
    builder,
    split: str,
    label: str,
    mesh,
    rows: np.ndarray | None = None,
) -> float:
    """Top-1 accuracy of the teacher on the split's labelled images (of `rows`; default: all)."""
    rows = input_pipeline.image_rows(builder, split) if rows is None else rows
    hits = total = 0
    for probs, chunk in predict_batches(teacher, params, builder, split, rows, mesh, (label,)):
        labelled = chunk[label] >= 0
        hits += int(np.sum(probs.argmax(-1)[labelled] == chunk[label][labelled]))
        total += int(np.sum(labelled))
    return hits / max(total, 1)


def precompute_teacher_probs(
    teacher: Teacher, params: Any, builder, mesh, splits: tuple[str, ...] = ("train",)
) -> None:
    """Writes the teacher's probabilities for every row of `splits` beside the data set, streamed a
    batch at a time; each file appears only once complete (builders.teacher_probs)."""
    if jax.process_count() > 1:
        raise ValueError(
            "teacher probabilities are written by one process: run train_teacher with "
            "--config.teacher.source=checkpoint --config.teacher.precompute=True without --distributed"
        )
    for split in splits:
        rows = np.arange(builder.info.splits[split].num_examples)
        dataset_dir = os.fspath(builder.data_dir)
        with TeacherProbsWriter(dataset_dir, split, len(rows), teacher.num_classes) as writer:
            for probs, _ in predict_batches(
                teacher, params, builder, split, rows, mesh,
                progress=f"teacher probabilities ({split})",
            ):  # fmt: skip
                writer.write(probs)
            path = writer.close()
        logging.info("teacher: wrote %d distributions to %s", len(rows), path)


def check_normalization(cfg: Any) -> None:
    """Refuses a torchvision import whose images would not get the ImageNet normalization it needs."""
    if cfg.source == "torchvision" and cfg.normalization != "imagenet":
        raise ValueError(
            f"config.teacher.normalization={cfg.normalization!r} with source=torchvision: set "
            "--config.teacher.normalization=imagenet (torchvision's weights expect ImageNet mean/std)"
        )


def run_teacher(config: Any, workdir: str) -> tuple[Teacher, Any]:
    """Trains (source=train), imports (torchvision) or restores (checkpoint) the teacher of `config`,
    saves it to restore.teacher_dir, and with teacher.precompute writes its probabilities beside the
    data set (building the data set first if needed); returns (module, params)."""
    check_normalization(config.teacher)
    mesh = parallel.make_mesh()
    builder = datasets.build(config.data)
    config = datasets.resolve_config(config, builder)
    restore.check_teacher_classes(config)
    directory = restore.teacher_dir(config, workdir)
    source = config.teacher.source
    if source == "train":
        module, params, metrics = train_teacher(config, builder, workdir, mesh)
        logging.info("teacher: %s", " | ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        restore.save_teacher(directory, params, {"metrics": metrics})
    elif source == "torchvision":
        state = teacher_import.load_state_dict(config.teacher.path)
        module = create_teacher(config.teacher)
        params = jax.device_put(teacher_import.convert_alexnet(state), parallel.replicated(mesh))
        restore.save_teacher(
            directory, params, {"imported_from": os.fspath(paths.as_path(config.teacher.path))}
        )
    elif source == "checkpoint":
        module, params = restore.restore_teacher(config, directory, mesh)
    else:
        raise ValueError(
            f"config.teacher.source={source!r}: expected train, torchvision or checkpoint"
        )
    logging.info("teacher: checkpoint at %s", directory)
    if config.teacher.precompute:
        precompute_teacher_probs(module, params, builder, mesh)
    return module, params
