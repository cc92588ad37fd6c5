"""The image teacher: train it on fine labels, import torchvision's AlexNet, restore it, and write its
class probabilities into a built data set so student training never runs it."""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from alignment import parallel
from alignment.models import Teacher, create_teacher
from data_pipelines import input_pipeline, paths
from data_pipelines.builders.teacher_probs import save_teacher_probs
from experiments.runtime import datasets, restore
from experiments.runtime.datasets import NO_LABELS
from experiments.runtime.logs import Progress
from experiments.training import teacher_import


def init_teacher_params(teacher: Teacher, rng: jax.Array, mesh) -> Any:
    """Replicated float32 parameters built on the mesh (eval_shape + jitted init)."""

    def init(rng):
        return teacher.init(rng, teacher.example_inputs())["params"]

    abstract = jax.eval_shape(init, rng)
    sharding = jax.tree.map(lambda _: parallel.replicated(mesh), abstract)
    return jax.jit(init, out_shardings=sharding)(rng)


def augment_images(images: jax.Array, rng: jax.Array, max_shift: int) -> jax.Array:
    """Random horizontal flips (the world's and ImageNet's labels are mirror-invariant) and, with
    max_shift > 0, random shifts by up to max_shift pixels, edge values filling the border:
    uint8 [B, H, W, C] -> the same."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
    images = jnp.where(flip, images[:, :, ::-1], images)
    if not max_shift:
        return images
    s = max_shift
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
    offsets = jax.random.randint(jax.random.fold_in(rng, 1), (images.shape[0], 2), 0, 2 * s + 1)
    size = images.shape[1:]
    return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), size))(padded, offsets)


def train_teacher(config: Any, builder, mesh) -> tuple[Teacher, Any, dict[str, float]]:
    """Fits the teacher to the train split's images and their fine labels, or their labels when the data
    set has no fine labels; returns (module, params, metrics).

    metrics: train and test top-1 accuracy on those classes.
    """
    cfg = config.teacher
    teacher = create_teacher(cfg)
    train = input_pipeline.load_split(
        builder, "train", ("image", "has_image", "fine_label", "label")
    )
    name = "fine_label" if np.any(train["has_image"] & (train["fine_label"] >= 0)) else "label"
    keep = train["has_image"] & (train[name] >= 0)
    images, labels = train["image"][keep], train[name][keep].astype(np.int32)
    if not len(images):
        raise ValueError(NO_LABELS)
    if labels.max() >= cfg.num_classes:
        raise ValueError(
            f"{name}s reach {labels.max()} but config.teacher.num_classes={cfg.num_classes}: "
            f"set --config.teacher.num_classes={labels.max() + 1} (or 0 to follow the data set)"
        )
    logging.info("teacher: %d train images, %d classes (%s)", len(images), cfg.num_classes, name)
    rng = jax.random.PRNGKey(config.seed)
    params = init_teacher_params(teacher, rng, mesh)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, min(100, cfg.total_steps // 10 + 1), cfg.total_steps
    )
    optimizer = optax.adamw(schedule, weight_decay=1e-4)
    opt_state = jax.jit(optimizer.init)(params)
    batch_sharding = NamedSharding(mesh, PartitionSpec(parallel.AXIS))

    def loss_fn(params, images, labels, rng):
        logits = teacher.apply(
            {"params": params},
            augment_images(images, rng, config.augment.image_shift),
            train=True,
            rngs={"dropout": rng},
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def step(params, opt_state, images, labels, rng):
        loss, grads = jax.value_and_grad(loss_fn)(params, images, labels, rng)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    order = np.random.default_rng(config.seed)
    progress = Progress("teacher", cfg.total_steps, examples_per_step=cfg.batch_size)
    losses = []
    for i in range(cfg.total_steps):
        rows = order.integers(0, len(images), cfg.batch_size)
        batch = [jax.device_put(x, batch_sharding) for x in (images[rows], labels[rows])]
        params, opt_state, loss = step(params, opt_state, *batch, jax.random.fold_in(rng, i))
        losses.append(loss)
        if (i + 1) % max(1, cfg.total_steps // 10) == 0 or i + 1 == cfg.total_steps:
            progress.update(i + 1, {"loss": float(np.mean(jax.device_get(losses)))})
            losses = []
    metrics = {"train_top1": accuracy(teacher, params, images[:5000], labels[:5000], mesh)}
    test = input_pipeline.load_split(builder, "test", ("image", "has_image", name))
    labeled = test["has_image"] & (test[name] >= 0)
    if np.any(labeled):
        metrics["test_top1"] = accuracy(
            teacher, params, test["image"][labeled], test[name][labeled], mesh
        )
    return teacher, params, metrics


def predict_probs(
    teacher: Teacher,
    params: Any,
    images: np.ndarray,
    mesh,
    batch: int = 512,
    progress: str | None = None,
) -> np.ndarray:
    """Softmax of the teacher on uint8 images [N, H, W, 3] -> float32 [N, num_classes]; with
    `progress`, a progress line under that name about every tenth of the batches."""
    batch -= batch % jax.device_count()
    batches = -(-len(images) // batch)
    lines = Progress(progress, batches, examples_per_step=batch) if progress else None
    apply = jax.jit(lambda p, x: jax.nn.softmax(teacher.apply({"params": p}, x)))
    sharding = NamedSharding(mesh, PartitionSpec(parallel.AXIS))
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        padded = np.concatenate(
            [chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)]
        )
        probs = apply(params, jax.device_put(padded, sharding))
        out.append(np.asarray(jax.device_get(probs))[: len(chunk)])
        done = len(out)
        if lines is not None and (done % max(1, batches // 10) == 0 or done == batches):
            lines.update(done)
    return np.concatenate(out) if out else np.zeros((0, teacher.num_classes), np.float32)


def accuracy(teacher: Teacher, params: Any, images: np.ndarray, labels: np.ndarray, mesh) -> float:
    probs = predict_probs(teacher, params, images, mesh)
    return float(np.mean(probs.argmax(-1) == labels))


def precompute_teacher_probs(
    teacher: Teacher, params: Any, builder, mesh, splits: tuple[str, ...] = ("train",)
) -> None:
    """Writes the teacher's probabilities for every image row of `splits` beside the data set."""
    for split in splits:
        rows = input_pipeline.load_split(builder, split, ("id", "image"))
        probs = predict_probs(
            teacher, params, rows["image"], mesh, progress=f"teacher probabilities ({split})"
        )
        path = save_teacher_probs(os.fspath(builder.data_dir), split, rows["id"], probs)
        logging.info("teacher: wrote %d distributions to %s", len(probs), path)


def check_normalization(cfg: Any) -> None:
    """Refuses a torchvision import whose images would not get the ImageNet normalization it needs."""
    normalization = cfg.get("normalization", "symmetric")
    if cfg.source == "torchvision" and normalization != "imagenet":
        raise ValueError(
            f"config.teacher.normalization={normalization!r} with source=torchvision: set "
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
        module, params, metrics = train_teacher(config, builder, mesh)
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
