"""The student training loop: both pair streams each step, orbax checkpoints with exact resume, logging,
periodic validation retrieval, and a guard against non-finite steps."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np

from alignment import parallel, retrieval, units
from alignment.models import create_model, init_params
from alignment.train_state import TrainState
from data_pipelines import augment, input_pipeline
from data_pipelines.builders.teacher_probs import teacher_probs_path
from experiments import checkpointing, data, teacher
from experiments.embedding import embed_modality, eval_batch_size
from experiments.optimizer import make_optimizer
from experiments.progress import Progress, ScalarWriter
from experiments.workdir_lock import WorkdirLock

CHECKPOINT_SUBDIR = "checkpoints"
BEST_SUBDIR = "best"
VALIDATION_DIRECTIONS = (("image", "sound"), ("image", "text"), ("text", "sound"))
VALIDATION_FEATURES = ("image", "sound", "text", "text_mask", "has_image", "has_sound", "has_text")
SELECTION_METRIC = "val/mean_median_rank"
# Above this fraction of never-active units at the validated layer, the representation is collapsing.
DEAD_UNITS_WARNING = 0.5


class NonFiniteLossError(FloatingPointError):
    """A training step produced a non-finite loss or gradient."""


def _example_batch(config: Any) -> dict[str, dict[str, jax.ShapeDtypeStruct]]:
    m = config.model
    size = m.vision.image_size
    return {
        "image_sound": {
            "image": jax.ShapeDtypeStruct((1, size, size, 3), np.uint8),
            "sound": jax.ShapeDtypeStruct((1, m.sound.time_steps, m.sound.freq_bins), np.float32),
        },
        "image_text": {
            "image": jax.ShapeDtypeStruct((1, size, size, 3), np.uint8),
            "text": jax.ShapeDtypeStruct((1, m.text.max_words, m.text.word_dim), np.float32),
            "text_mask": jax.ShapeDtypeStruct((1, m.text.max_words), np.bool_),
        },
    }


def abstract_train_state(model, optimizer) -> TrainState:
    """Shapes and dtypes of the TrainState (nothing allocated): the restore target and shape check."""

    def init():
        params = init_params(model, jax.random.PRNGKey(0))
        return TrainState(
            step=np.zeros((), np.int32),
            params=params,
            opt_state=optimizer.init(params),
            rng=jax.random.PRNGKey(0),
            nonfinite_count=np.zeros((), np.int32),
        )

    return jax.eval_shape(init)


def check_config(config: Any) -> None:
    """Cross-field checks that would otherwise fail deep inside compilation."""
    teacher.check_teacher_classes(config)
    m, d = config.model, config.data
    if m.sound.time_steps > d.audio.time_steps:
        raise ValueError(
            f"config.model.sound.time_steps={m.sound.time_steps} but the stored clips have "
            f"config.data.audio.time_steps={d.audio.time_steps} frames: the sound window cannot be "
            "longer than the clip"
        )
    pairs = [
        ("model.vision.image_size", m.vision.image_size, "data.image_size", d.image_size),
        (
            "model.sound.freq_bins",
            m.sound.freq_bins,
            "data.audio.n_fft // 2 + 1",
            d.audio.n_fft // 2 + 1,
        ),
        ("model.text.max_words", m.text.max_words, "data.text.max_words", d.text.max_words),
        ("model.text.word_dim", m.text.word_dim, "data.text.word_dim", d.text.word_dim),
    ]
    for a, va, b, vb in pairs:
        if va != vb:
            raise ValueError(
                f"config.{a}={va} but config.{b}={vb}: the model must take the stored shapes"
            )
    if config.batch_size % jax.device_count():
        raise ValueError(
            f"config.batch_size={config.batch_size} must be a multiple of the {jax.device_count()} devices"
        )


def load_validation_items(config: Any, builder) -> dict[str, Any]:
    """Validation (else test) items, read once per run: {"arrays": features of the rows used,
    "rows": {(a, b): indices of the first config.eval_items rows holding modalities a and b}}.

    Held-out train rows hold pairs, not triplets, so each direction uses the rows that have both of its
    modalities; a direction without such rows (text->sound on pairs) is left out.
    """
    split = "validation" if "validation" in builder.info.splits else "test"
    arrays = input_pipeline.load_split(builder, split, VALIDATION_FEATURES)
    rows = {}
    for a, b in VALIDATION_DIRECTIONS:
        both = np.flatnonzero(arrays[f"has_{a}"] & arrays[f"has_{b}"])[: config.eval_items]
        if len(both) >= 2:
            rows[(a, b)] = both
    if not rows:
        raise ValueError(
            f"the {split} split has no two rows sharing two modalities to validate on: add a "
            "validation.jsonl, or set --config.eval_every=0"
        )
    keep = np.unique(np.concatenate(list(rows.values())))
    return {
        "arrays": {k: v[keep] for k, v in arrays.items()},
        "rows": {d: np.searchsorted(keep, r) for d, r in rows.items()},
    }


def validate(config: Any, params, items: dict[str, Any], embed_fn) -> dict[str, float]:
    """Median rank of the true match among the validation items per available direction, their mean
    (SELECTION_METRIC, the model-selection score) and the fraction of never-active units."""
    layer = config.eval_layers[0]
    arrays = items["arrays"]
    modalities = sorted({m for direction in items["rows"] for m in direction})
    reps = {
        m: embed_modality(embed_fn, params, arrays, m, [layer], eval_batch_size())[layer]
        for m in modalities
    }
    scores = {}
    for (a, b), rows in items["rows"].items():
        chunk = min(config.eval_chunk, len(rows))
        scores[f"val/{a[:3]}_{b[:3]}_median_rank"] = float(
            retrieval.paper_median_rank(reps[a][rows], reps[b][rows], chunk)
        )
    scores[SELECTION_METRIC] = float(np.mean(list(scores.values())))
    present = {m: arrays[f"has_{m}"] for m in modalities}
    scores["val/dead_units"] = units.dead_unit_fraction(reps, present)
    return scores


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


def train(config: Any, workdir: str) -> TrainState:
    """Trains the students of `config` in `workdir`, resuming from its latest complete checkpoint.

    Process 0 holds the workdir's lock for the whole run, so a second run on the same workdir stops at
    once. Knobs that follow the data set (class counts, num_epochs) are resolved from the built data
    set first (data.resolve_config). Returns the final TrainState (replicated over all devices).
    """
    builder = data.open_built(config.data)
    config = data.resolve_config(config, builder)
    check_config(config)
    if jax.process_index() != 0:
        return _train(config, workdir, builder)
    with WorkdirLock(workdir):
        return _train(config, workdir, builder)


def _train(config: Any, workdir: str, builder) -> TrainState:
    mesh = parallel.make_mesh()
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)

    needs_teacher = config.loss.objective in ("transfer", "both")
    has_probs = needs_teacher and _has_teacher_probs(builder)
    teacher_module = teacher_params = None
    if needs_teacher and not has_probs:
        teacher_module, teacher_params = teacher.restore_teacher(
            config, teacher.teacher_dir(config, workdir), mesh
        )

    manager = checkpointing.make_manager(
        os.path.join(workdir, CHECKPOINT_SUBDIR), keep=config.keep_checkpoints
    )
    abstract = abstract_train_state(model, optimizer)
    latest = manager.latest_step()
    if latest is not None:
        state, meta = checkpointing.restore(
            manager, checkpointing.replicated_abstract(abstract, mesh), latest
        )
        print(f"train: resumed from step {latest} in {manager.directory}", flush=True)
    else:
        state = parallel.create_train_state(
            model, optimizer, jax.random.PRNGKey(config.seed), _example_batch(config), mesh
        )
        if config.init_vision_from_teacher:
            state = _vision_from_teacher(config, workdir, state, mesh)
    start = int(jax.device_get(state.step))
    if start >= config.total_steps:
        manager.close()
        return state
    # Model selection needs held-out rows: on the test split it would pick the checkpoint by the test.
    selects = config.eval_every and "validation" in builder.info.splits
    best = _BestCheckpoint(os.path.join(workdir, BEST_SUBDIR)) if selects else None
    if config.eval_every and not selects:
        print("train: no validation split: validating on test rows, keeping no best checkpoint")

    step_fn = parallel.make_train_step(model, optimizer, config.loss, mesh, teacher_module)
    embed_fn = parallel.make_embed_fn(model, mesh)
    batches = input_pipeline.train_batches(
        builder,
        config.batch_size,
        seed=config.seed,
        start_step=start,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        augment=augment.AugmentConfig.from_config(config.augment, config.model.sound.time_steps),
    )
    writer = ScalarWriter(workdir)
    progress = Progress("train", config.total_steps, start, examples_per_step=2 * config.batch_size)
    buffer = _MetricsBuffer()
    validation_items = None
    skipped = int(jax.device_get(state.nonfinite_count))
    meta = {"config": json.loads(config.to_json_best_effort())}
    for step in range(start, config.total_steps):
        batch = parallel.shard_batch(next(batches), mesh)
        state, metrics = step_fn(state, batch, teacher_params)
        buffer.add(step, metrics)
        done = step + 1
        last = done == config.total_steps
        halt = done == config.halt_at_step
        save_now = done % config.checkpoint_every == 0 or last or halt
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
            if validation_items is None:
                validation_items = load_validation_items(config, builder)
            scores = validate(config, state.params, validation_items, embed_fn)
            writer.write(done, scores)
            print("validate " + " | ".join(f"{k} {v:.3g}" for k, v in scores.items()), flush=True)
            if scores["val/dead_units"] > DEAD_UNITS_WARNING:
                print(
                    f"warning: {scores['val/dead_units']:.0%} of the {config.eval_layers[0]} units "
                    "are never active on the validation items: the representation is collapsing "
                    "(lower the learning rate, or train longer with more augmentation)",
                    flush=True,
                )
            if best is not None:
                best.offer(done, scores[SELECTION_METRIC], state, meta)
        if save_now:
            checkpointing.save(manager, done, state, {**meta, "data_position": done})
        if halt:
            print(f"train: halted at step {done}; rerun the same command to resume", flush=True)
            break
    manager.wait_until_finished()
    manager.close()
    if best is not None:
        best.close()
    writer.close()
    return state


class _BestCheckpoint:
    """The state with the lowest validation score so far (the latest of equals), in its own directory.

    The score is kept in the checkpoint's metadata, so a resumed run competes with the best it had.
    """

    def __init__(self, directory: str):
        self.manager = checkpointing.make_manager(directory, keep=1)
        step = self.manager.latest_step()
        meta = checkpointing.read_meta(self.manager, step) if step is not None else {}
        self.score = float(meta.get("score", np.inf))

    def offer(self, step: int, score: float, state: TrainState, meta: dict) -> None:
        # A tie goes to the later, longer-trained state: median ranks near the floor tie often.
        if score <= self.score:
            self.score = score
            checkpointing.save(self.manager, step, state, {**meta, "score": score, "step": step})

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _vision_from_teacher(config: Any, workdir: str, state: TrainState, mesh) -> TrainState:
    """Starts the vision tower's conv layers from the teacher's, as a student AlexNet starts from
    ImageNet weights: the image student then begins by seeing what the teacher sees."""
    norms = (config.teacher.normalization, config.model.vision.normalization)
    if norms[0] != norms[1]:
        raise ValueError(
            f"config.init_vision_from_teacher: the teacher reads pixels normalized as {norms[0]!r}, "
            f"the vision tower as {norms[1]!r}; set config.model.vision.normalization={norms[0]!r} "
            "or --config.init_vision_from_teacher=False"
        )
    _, teacher_params = teacher.restore_teacher(config, teacher.teacher_dir(config, workdir), mesh)
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
    return "teacher_probs" in builder.info.features or os.path.isfile(
        teacher_probs_path(os.fspath(builder.data_dir), "train")
    )
