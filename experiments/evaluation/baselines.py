"""The baseline rows of Tables 1 and 2: Random, Linear Reg., CCA and Normalized CCA.

The linear baselines (alignment.baselines) are fit between modality-specific features of training pairs:
  image: the trained teacher's penultimate activations (ReLU of its last hidden layer); without a teacher
         checkpoint, raw pixels in [0, 1], reduced to their top principal components inside the fit;
  sound: per-frequency mean and standard deviation of the log spectrogram over time ([2F]);
  text:  mean of the caption's word vectors under its mask ([D]).
IMG<->SND is fit on train image+sound rows, IMG<->TXT on train image+text rows, and the never-paired
SND<->TXT through the image bridge (fit_bridge). At most `max_pairs` pairs of each kind are used, taken
from the first 2 * max_pairs stored train rows (stored in generated order; the world alternates kinds).
Random ranks Gaussian embeddings drawn with config.seed (so its recall@k is measured as well).
Every row is scored on the test triplets with the protocol of evaluation/retrieval.py.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from alignment import baselines, parallel, retrieval
from data_pipelines import input_pipeline
from experiments.evaluation.context import EvalContext, triplet_rows
from experiments.evaluation.retrieval import (
    DIRECTIONS,
    PAIRED_DIRECTIONS,
    RECALL_KS,
    UNPAIRED_DIRECTIONS,
)
from experiments.evaluation.rows import RANKS, RESULTS, Row
from experiments.runtime import restore
from experiments.runtime.embedding import embed_modality, eval_batch_size

METHOD_ROWS = {"regression": "Linear Reg.", "cca": "CCA", "normalized_cca": "Normalized CCA"}
MAX_TRAIN_PAIRS = 3000
RANDOM_DIM = 64
# Features wider than this are reduced to their top principal components before a fit.
PCA_DIM = 256
_FEATURES = ("image", "sound", "text", "text_mask", "has_image", "has_sound", "has_text")


def sound_statistics(sound: np.ndarray) -> np.ndarray:
    """Spectrograms [N, T, F] -> [N, 2F]: mean over time per frequency, then standard deviation."""
    sound = np.asarray(sound, np.float32)
    return np.concatenate([sound.mean(axis=1), sound.std(axis=1)], axis=1)


def mean_word_vector(text: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Word vectors [N, L, D] with mask [N, L] -> [N, D], the mean over the valid words."""
    weights = np.asarray(mask, np.float32)[..., None]
    return (np.asarray(text, np.float32) * weights).sum(axis=1) / np.maximum(
        weights.sum(axis=1), 1.0
    )


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, H * W * 3] in [0, 1]."""
    return np.asarray(images, np.float32).reshape(len(images), -1) / 255.0


def teacher_penultimate(teacher_module, params, images: np.ndarray, mesh) -> np.ndarray:
    """uint8 images [N, H, W, 3] -> float32 [N, hidden[-1]]: ReLU of the teacher's last hidden layer."""
    name = f"fc{len(teacher_module.hidden) + 5}"

    def penultimate(p, x):
        _, state = teacher_module.apply(
            {"params": p},
            x,
            capture_intermediates=lambda module, _: module.name == name,
            mutable=["intermediates"],
        )
        return jax.nn.relu(state["intermediates"][name]["__call__"][0])

    apply = jax.jit(
        penultimate,
        in_shardings=(parallel.replicated(mesh), NamedSharding(mesh, PartitionSpec(parallel.AXIS))),
    )
    embed = lambda p, x, modality, mask: {"penultimate": apply(p, x)}
    out = embed_modality(
        embed,
        params,
        {"image": images},
        "image",
        ["penultimate"],
        eval_batch_size(),
    )
    return out["penultimate"]


def image_featurizer(config: Any, workdir: str | None, mesh):
    """(images [N, H, W, 3] -> features [N, D], description): the teacher's if one is found, else pixels."""
    directory = restore.teacher_dir(config, workdir)
    if directory:
        try:
            module, params = restore.restore_teacher(config, directory, mesh)
        except FileNotFoundError:
            pass
        else:
            width = module.hidden[-1]
            return (
                lambda images: teacher_penultimate(module, params, images, mesh),
                f"teacher penultimate activations ({width}-d)",
            )
    return raw_pixels, f"raw pixels (top {PCA_DIM} principal components)"


def evaluate(context: EvalContext, max_pairs: int = MAX_TRAIN_PAIRS) -> list[Row]:
    """Random and the linear baselines, scored like a trained run: RESULTS rows "Random", "Linear Reg.",
    "CCA" and "Normalized CCA", in that order, each with "row", "retrieval" ({"a->b": {"median_rank",
    "recall@k"...}} over the six directions of retrieval.DIRECTIONS), "chunk", "num_pairs", "features",
    "train_pairs" and "seconds"; and a RANKS row for each with the rank of every test query.

    The image features are the teacher's (config.teacher.path, else <workdir>/teacher) when there is
    one, else raw pixels; at most `max_pairs` training pairs of each kind are used.
    """
    start = time.perf_counter()
    config, builder = context.config, context.builder
    featurize_images, image_desc = image_featurizer(config, context.workdir, context.mesh)
    test = context.split("test")
    rows = triplet_rows(test)
    if not len(rows):
        raise ValueError("the test split has no row with an image, a sound and a text")
    test_features = {
        "image": featurize_images(test["image"][rows]),
        "sound": sound_statistics(test["sound"][rows]),
        "text": mean_word_vector(test["text"][rows], test["text_mask"][rows]),
    }
    size = builder.info.splits["train"].num_examples
    train = input_pipeline.load_split(builder, f"train[:{min(size, 2 * max_pairs)}]", _FEATURES)
    sound_rows = np.flatnonzero(train["has_image"] & train["has_sound"])[:max_pairs]
    text_rows = np.flatnonzero(train["has_image"] & train["has_text"])[:max_pairs]
    if not (len(sound_rows) and len(text_rows)):
        raise ValueError("the baselines need train rows with image+sound and with image+text")
    pivot_sound = featurize_images(train["image"][sound_rows])
    pivot_text = featurize_images(train["image"][text_rows])
    sounds = sound_statistics(train["sound"][sound_rows])
    texts = mean_word_vector(train["text"][text_rows], train["text_mask"][text_rows])

    chunk = min(config.eval_chunk, len(rows))
    common = {
        "chunk": chunk,
        "num_pairs": int(len(rows)),
        "features": {
            "image": image_desc,
            "sound": "mean and std over time of the log spectrogram",
            "text": "mean word vector",
        },
        "train_pairs": {"image_sound": int(len(sound_rows)), "image_text": int(len(text_rows))},
    }
    noise = np.random.default_rng(config.seed)
    random_embeddings = {m: noise.standard_normal((len(rows), RANDOM_DIM)) for m in test_features}
    ranks = {"Random": retrieval.direction_ranks(random_embeddings, DIRECTIONS, chunk)}
    results = {
        "Random": {
            "row": "Random",
            "retrieval": retrieval.table_of_ranks(ranks["Random"], RECALL_KS),
            **common,
            "features": dict.fromkeys(test_features, f"Gaussian noise ({RANDOM_DIM}-d)"),
        }
    }
    options = {"max_dim": PCA_DIM}
    for method, name in METHOD_ROWS.items():
        image_sound = baselines.fit_pair(method, pivot_sound, sounds, **options)
        image_text = baselines.fit_pair(method, pivot_text, texts, **options)
        bridge = baselines.fit_bridge(method, pivot_sound, sounds, pivot_text, texts, **options)
        spaces = (
            (image_sound, "image", "sound", PAIRED_DIRECTIONS[:2]),
            (image_text, "image", "text", PAIRED_DIRECTIONS[2:]),
            (bridge, "sound", "text", UNPAIRED_DIRECTIONS),
        )
        ranks[name] = {}
        for space, x, y, directions in spaces:
            embedded = {x: space.embed_x(test_features[x]), y: space.embed_y(test_features[y])}
            ranks[name].update(retrieval.direction_ranks(embedded, directions, chunk))
        table = retrieval.table_of_ranks(ranks[name], RECALL_KS)
        results[name] = {"row": name, "retrieval": table, **common}
    seconds = time.perf_counter() - start
    return [
        row
        for name, fields in results.items()
        for row in (
            Row(RESULTS, name, {**fields, "seconds": seconds}),
            Row(RANKS, name, ranks[name]),
        )
    ]
