"""Evaluation of one trained checkpoint: retrieval, zero-shot classifier transfer and hidden units.

`evaluate_checkpoint(config, workdir)` restores the latest student checkpoint of `workdir` onto every local
device, embeds the test split in padded jitted batches and returns a JSON-able dict (a row of the tables of
experiments/report_tables.py):

  retrieval         {direction: {"median_rank", "recall@1", "recall@5", "recall@10"}} at config.eval_layers[0]
  retrieval_by_layer  the same for every layer of config.eval_layers
  transfer          the 3 x 3 classifier-transfer matrix at config.eval_layers[0] (or None without labels)
  units             concept selectivity of the fc7 units and its shuffled-label null (or None without labels)
  dead_units        fraction of the config.eval_layers[0] units never active on any test item

Retrieval uses the test rows holding all three modalities, in chunks of config.eval_chunk pairs (the paper:
5 x 1000 of 5000). Classifier transfer trains on the labeled rows of the validation split and tests on the
labeled test rows; without a labeled validation split the labeled test rows are halved (first half trains,
second half tests). Evaluation runs in one process (it embeds host-local arrays).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from alignment import parallel, retrieval, transfer, units
from alignment.models import create_model
from data_pipelines import input_pipeline
from experiments import checkpointing, data, trainer
from experiments.embedding import embed_modality, eval_batch_size
from experiments.optimizer import make_optimizer

MODALITIES = ("image", "sound", "text")
# Table 1 (pairs seen in training) then Table 2 (sound and text, never paired).
PAIRED_DIRECTIONS = (("image", "sound"), ("sound", "image"), ("image", "text"), ("text", "image"))
UNPAIRED_DIRECTIONS = (("text", "sound"), ("sound", "text"))
DIRECTIONS = PAIRED_DIRECTIONS + UNPAIRED_DIRECTIONS
OBJECTIVE_ROWS = {"transfer": "Model Transfer", "ranking": "Ranking", "both": "Both"}
RECALL_KS = (1, 5, 10)
UNIT_LAYER = "fc7"
UNIT_TOP_K = 10
UNIT_THRESHOLD = 0.5
GRID_UNITS = 6
UNIT_GRID_FILE = "units.png"
SPLIT_FEATURES = (
    "id", "image", "sound", "text", "text_mask", "caption", "label",
    "has_image", "has_sound", "has_text",
)  # fmt: skip


def checkpoint_dir(config: Any, workdir: str) -> str:
    """Where evaluation reads: <workdir>/best when config.eval_checkpoint == "best" and training kept a
    best checkpoint (it validates), else <workdir>/checkpoints (the latest)."""
    if config.eval_checkpoint not in ("best", "latest"):
        raise ValueError(
            f"config.eval_checkpoint={config.eval_checkpoint!r}: expected best or latest"
        )
    best = os.path.join(workdir, trainer.BEST_SUBDIR)
    if config.eval_checkpoint == "best" and os.path.isdir(best) and os.listdir(best):
        return best
    return os.path.join(workdir, trainer.CHECKPOINT_SUBDIR)


def restore_params(config: Any, workdir: str, mesh) -> tuple[Any, Any, int]:
    """(model, params replicated over `mesh`, step) of the checkpoint evaluation reads (checkpoint_dir)."""
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    abstract = trainer.abstract_train_state(model, optimizer)
    directory = checkpoint_dir(config, workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"no checkpoints in {directory}: train first with `python -m experiments.train "
            f"--config=<config> --workdir={workdir}`"
        )
    manager = checkpointing.make_manager(directory, async_save=False)
    try:
        state, _ = checkpointing.restore(manager, checkpointing.replicated_abstract(abstract, mesh))
    finally:
        manager.close()
    return model, state.params, int(jax.device_get(state.step))


def load_rows(
    builder, split: str, features: Sequence[str] = SPLIT_FEATURES
) -> dict[str, np.ndarray]:
    """The split's features as numpy, with "id" and "caption" decoded to str arrays."""
    arrays = input_pipeline.load_split(builder, split, features)
    for name in ("id", "caption"):
        if name in arrays:
            arrays[name] = np.asarray([s.decode("utf-8") for s in arrays[name]], dtype=str)
    return arrays


def triplet_rows(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the rows holding an image, a sound and a text."""
    return np.flatnonzero(arrays["has_image"] & arrays["has_sound"] & arrays["has_text"])


def embed_rows(
    embed_fn, params, arrays: dict[str, np.ndarray], layers: Sequence[str], modalities=MODALITIES
) -> dict[str, dict[str, np.ndarray]]:
    """{modality: {layer: [N, D]}} for every row of `arrays` (rows missing a modality embed zeros)."""
    batch = eval_batch_size()
    return {m: embed_modality(embed_fn, params, arrays, m, layers, batch) for m in modalities}


def label_names(builder, labels: np.ndarray) -> list[str]:
    """Concept names indexed by label: label_names.json when stored, else "class <i>"."""
    try:
        names = list(data.label_names(builder)["labels"])
    except (FileNotFoundError, KeyError):
        names = []
    count = max(len(names), int(labels.max()) + 1 if labels.size else 0)
    return names + [f"class {i}" for i in range(len(names), count)]


def _transfer_split(builder, embed_fn, params, layer, test, test_reps):
    """Labeled (train, test) features per modality and a description of the training items."""
    labeled_test = {m: np.flatnonzero(test[f"has_{m}"] & (test["label"] >= 0)) for m in MODALITIES}
    source = None
    if "validation" in builder.info.splits:
        val = load_rows(builder, "validation", ("image", "sound", "text", "text_mask", "label",
                                                "has_image", "has_sound", "has_text"))  # fmt: skip
        rows = {m: np.flatnonzero(val[f"has_{m}"] & (val["label"] >= 0)) for m in MODALITIES}
        if all(len(r) for r in rows.values()):
            reps = embed_rows(embed_fn, params, val, [layer])
            train = {m: (reps[m][layer][rows[m]], val["label"][rows[m]]) for m in MODALITIES}
            source = "validation split"
    if source is None:
        # No labeled validation items: train on the first half of each modality's labeled test rows.
        halves = {m: np.array_split(r, 2) for m, r in labeled_test.items()}
        train = {m: (test_reps[m][layer][h[0]], test["label"][h[0]]) for m, h in halves.items()}
        labeled_test = {m: h[1] for m, h in halves.items()}
        source = "first half of the labeled test rows"
    evaluation = {m: (test_reps[m][layer][r], test["label"][r]) for m, r in labeled_test.items()}
    return train, evaluation, source


def _unit_analysis(test, reps, names, out_dir) -> dict[str, Any]:
    rows = {m: np.flatnonzero(test[f"has_{m}"] & (test["label"] >= 0)) for m in MODALITIES}
    acts = {m: reps[m][UNIT_LAYER][r] for m, r in rows.items()}
    labels = {m: test["label"][r] for m, r in rows.items()}
    k = min(UNIT_TOP_K, *(len(r) for r in rows.values()))
    scores, concepts = units.unit_selectivity(acts, labels, k)
    # Units silent on some modality (dead ReLUs) tie on every item: keep them out of the grid.
    alive = np.min([a.std(axis=0) for a in acts.values()], axis=0) > 0
    top = units.most_selective_units(np.where(alive, scores, -1.0), GRID_UNITS)
    figure = units.unit_grid_figure(
        [int(u) for u in top],
        acts,
        test["image"][rows["image"]],
        test["sound"][rows["sound"]],
        list(test["caption"][rows["text"]]),
        num_items=min(4, k),
        unit_titles=[f"unit {u}: {names[concepts[u]]} ({scores[u]:.2f})" for u in top],
    )
    grid = os.path.join(out_dir, UNIT_GRID_FILE)
    figure.savefig(grid, dpi=90)
    return {
        "layer": UNIT_LAYER,
        "k": k,
        "threshold": UNIT_THRESHOLD,
        "selective_fraction": float(np.mean(scores > UNIT_THRESHOLD)),
        "shuffled_fraction": units.shuffled_selective_fraction(acts, labels, k, UNIT_THRESHOLD),
        "top_units": [
            {"unit": int(u), "score": float(scores[u]), "concept": names[concepts[u]]} for u in top
        ],
        "grid": os.path.basename(grid),
    }


def evaluate_checkpoint(config: Any, workdir: str, out_dir: str | None = None) -> dict[str, Any]:
    """Retrieval, classifier transfer and unit selectivity of the latest checkpoint in `workdir`.

    Args:
      config: the run's config (model shapes, data, eval_layers, eval_chunk, loss.objective).
      workdir: the training workdir (checkpoints under <workdir>/checkpoints).
      out_dir: where the unit grid PNG goes (default <workdir>/eval); created if missing.

    Returns:
      A JSON-able dict: row (table name of the objective), objective, step, checkpoint (its directory),
      layer, chunk, num_pairs, retrieval, retrieval_by_layer, transfer, units, dead_units, seconds (see
      the module docstring).
    """
    if jax.process_count() > 1:
        raise RuntimeError("evaluation embeds host-local arrays: run it as a single process")
    start = time.perf_counter()
    out_dir = out_dir or os.path.join(workdir, "eval")
    os.makedirs(out_dir, exist_ok=True)
    mesh = parallel.make_mesh()
    builder = data.open_built(config.data)
    model, params, step = restore_params(config, workdir, mesh)
    embed_fn = parallel.make_embed_fn(model, mesh)
    layers = list(dict.fromkeys([*config.eval_layers, UNIT_LAYER]))
    test = load_rows(builder, "test")
    reps = embed_rows(embed_fn, params, test, layers)
    triplets = triplet_rows(test)
    if not len(triplets):
        raise ValueError("the test split has no row with an image, a sound and a text")
    chunk = min(config.eval_chunk, len(triplets))
    by_layer = {
        layer: retrieval.retrieval_table(
            {m: reps[m][layer][triplets] for m in MODALITIES}, DIRECTIONS, chunk, RECALL_KS
        )
        for layer in config.eval_layers
    }
    layer = config.eval_layers[0]
    objective = config.loss.objective
    result: dict[str, Any] = {
        "row": OBJECTIVE_ROWS.get(objective, objective),
        "objective": objective,
        "step": step,
        "checkpoint": checkpoint_dir(config, workdir),
        "layer": layer,
        "chunk": chunk,
        "num_pairs": int(len(triplets)),
        "retrieval": by_layer[layer],
        "retrieval_by_layer": by_layer,
        "transfer": None,
        "units": None,
        # Units of the evaluated layer never above zero on any test item: a collapsing representation.
        "dead_units": units.dead_unit_fraction(
            {m: reps[m][layer] for m in MODALITIES}, {m: test[f"has_{m}"] for m in MODALITIES}
        ),
    }
    if all(np.any(test[f"has_{m}"] & (test["label"] >= 0)) for m in MODALITIES):
        names = label_names(builder, test["label"])
        train, evaluation, source = _transfer_split(builder, embed_fn, params, layer, test, reps)
        matrix = transfer.transfer_matrix(train, evaluation, len(names))
        result["transfer"] = {
            "layer": layer,
            "train_items": source,
            "num_train": {m: len(train[m][1]) for m in MODALITIES},
            "num_classes": len(names),
            "table": matrix.table(),
        }
        result["units"] = _unit_analysis(test, reps, names, out_dir)
    result["seconds"] = time.perf_counter() - start
    return result
