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

Memory: the training pairs' features (at most max_pairs of each kind) and the features of one retrieval
chunk of test triplets at a time; the test rows are read, featurized, embedded and ranked a chunk at a
time, so what grows with the test split is its ranks and the Random row's [N, 64] embeddings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from alignment import baselines, parallel, retrieval
from alignment.streams import MODALITIES
from experiments.evaluation.context import EvalContext, triplet_rows
from experiments.evaluation.retrieval import (
    DIRECTIONS,
    PAIRED_DIRECTIONS,
    RECALL_KS,
    UNPAIRED_DIRECTIONS,
)
from experiments.evaluation.rows import RANKS, RESULTS, Row
from experiments.runtime import restore
from experiments.runtime.embedding import embed_modality, eval_batch_size, modality_features

METHOD_ROWS = {"regression": "Linear Reg.", "cca": "CCA", "normalized_cca": "Normalized CCA"}
MAX_TRAIN_PAIRS = 3000
RANDOM_DIM = 64
# Features wider than this are reduced to their top principal components before a fit.
PCA_DIM = 256
_FLAGS = ("has_image", "has_sound", "has_text")

Featurizer = Callable[[np.ndarray], np.ndarray]
# A fitted method's spaces: (space, x modality, y modality, the directions it ranks).
Spaces = list[tuple[baselines.PairSpace, str, str, tuple[tuple[str, str], ...]]]


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


def teacher_penultimate(teacher_module, params, mesh) -> Featurizer:
    """images uint8 [N, H, W, 3] -> float32 [N, hidden[-1]]: ReLU of the teacher's last hidden layer,
    embedded in eval_batch_size() batches (jitted once)."""
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
    return lambda images: embed_modality(
        embed, params, {"image": images}, "image", ["penultimate"], eval_batch_size()
    )["penultimate"]


def image_featurizer(config: Any, workdir: str | None, mesh) -> tuple[Featurizer, str]:
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
                teacher_penultimate(module, params, mesh),
                f"teacher penultimate activations ({width}-d)",
            )
    return raw_pixels, f"raw pixels (top {PCA_DIM} principal components)"


def batch_features(
    featurize_images: Featurizer, batch: dict[str, np.ndarray], modalities: Sequence[str]
) -> dict[str, np.ndarray]:
    """{modality: [n, D]} baseline features of the n real rows of a padded batch (its "mask")."""
    n = int(np.count_nonzero(batch["mask"]))
    features = {
        "image": lambda: featurize_images(batch["image"][:n]),
        "sound": lambda: sound_statistics(batch["sound"][:n]),
        "text": lambda: mean_word_vector(batch["text"][:n], batch["text_mask"][:n]),
    }
    return {m: features[m]() for m in modalities}


def train_pairs(
    context: EvalContext, featurize_images: Featurizer, max_pairs: int
) -> dict[str, dict[str, np.ndarray]]:
    """{"sound": {"image", "sound"}, "text": {"image", "text"}} -> [n, D] features of the first
    max_pairs image+sound and image+text rows among the first 2 * max_pairs stored train rows."""
    size = context.builder.info.splits["train"].num_examples
    flags = context.read("train", np.arange(min(size, 2 * max_pairs)), _FLAGS)
    rows = {
        m: np.flatnonzero(flags["has_image"] & flags[f"has_{m}"])[:max_pairs]
        for m in ("sound", "text")
    }
    if not all(len(r) for r in rows.values()):
        raise ValueError("the baselines need train rows with image+sound and with image+text")
    pairs = {}
    for m, chosen in rows.items():
        batches = context.batches("train", chosen, modality_features(("image", m)))
        pieces = [batch_features(featurize_images, b, ("image", m)) for b in batches]
        pairs[m] = {k: np.concatenate([p[k] for p in pieces]) for k in ("image", m)}
    return pairs


def fit_spaces(method: str, pairs: dict[str, dict[str, np.ndarray]]) -> Spaces:
    """The three spaces one method ranks the six directions in: image-sound, image-text and the
    sound-text bridge through the images."""
    options = {"max_dim": PCA_DIM}
    pivot_sound, sounds = pairs["sound"]["image"], pairs["sound"]["sound"]
    pivot_text, texts = pairs["text"]["image"], pairs["text"]["text"]
    return [
        (
            baselines.fit_pair(method, pivot_sound, sounds, **options),
            "image",
            "sound",
            PAIRED_DIRECTIONS[:2],
        ),
        (
            baselines.fit_pair(method, pivot_text, texts, **options),
            "image",
            "text",
            PAIRED_DIRECTIONS[2:],
        ),
        (
            baselines.fit_bridge(method, pivot_sound, sounds, pivot_text, texts, **options),
            "sound",
            "text",
            UNPAIRED_DIRECTIONS,
        ),
    ]


def chunk_features(
    context: EvalContext, rows: np.ndarray, featurize_images: Featurizer, chunk: int
) -> Iterator[dict[str, np.ndarray]]:
    """{modality: [chunk, D]} baseline features of each full chunk of the test rows `rows`, in order
    (the last len(rows) % chunk rows are left out, as retrieval.chunked_ranks does); rows are read a
    batch at a time and one chunk's features are held."""
    used = rows[: len(rows) // chunk * chunk]
    held: list[dict[str, np.ndarray]] = []
    count = 0
    for batch in context.batches("test", used, modality_features(MODALITIES)):
        held.append(batch_features(featurize_images, batch, MODALITIES))
        count += len(held[-1]["image"])
        while count >= chunk:
            merged = {m: np.concatenate([h[m] for h in held]) for m in MODALITIES}
            yield {m: values[:chunk] for m, values in merged.items()}
            held, count = [{m: values[chunk:] for m, values in merged.items()}], count - chunk


def chunked_test_ranks(
    context: EvalContext,
    rows: np.ndarray,
    featurize_images: Featurizer,
    spaces_by_row: dict[str, Spaces],
    chunk: int,
) -> dict[str, dict[str, np.ndarray]]:
    """{row name: {"a->b": [num_chunks, chunk] ranks}} of every method's spaces on the test rows, as
    retrieval.direction_ranks would give them, computed one chunk at a time."""
    ranks: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in spaces_by_row}
    for features in chunk_features(context, rows, featurize_images, chunk):
        for name, spaces in spaces_by_row.items():
            for space, x, y, directions in spaces:
                embedded = {x: space.embed_x(features[x]), y: space.embed_y(features[y])}
                for key, values in retrieval.direction_ranks(embedded, directions, chunk).items():
                    ranks[name].setdefault(key, []).append(values[0])
    return {name: {k: np.stack(v) for k, v in by_key.items()} for name, by_key in ranks.items()}


def evaluate(context: EvalContext, max_pairs: int = MAX_TRAIN_PAIRS) -> list[Row]:
    """Random and the linear baselines, scored like a trained run: RESULTS rows "Random", "Linear Reg.",
    "CCA" and "Normalized CCA", in that order, each with "row", "retrieval" ({"a->b": {"median_rank",
    "recall@k"...}} over the six directions of retrieval.DIRECTIONS), "chunk", "num_pairs", "features",
    "train_pairs" and "seconds"; and a RANKS row for each with the rank of every test query.

    The image features are the teacher's (config.teacher.path, else <workdir>/teacher) when there is
    one, else raw pixels; at most `max_pairs` training pairs of each kind are used.
    """
    start = time.perf_counter()
    config = context.config
    featurize_images, image_desc = image_featurizer(config, context.workdir, context.mesh)
    rows = triplet_rows(context.split("test"))
    if not len(rows):
        raise ValueError("the test split has no row with an image, a sound and a text")
    pairs = train_pairs(context, featurize_images, max_pairs)
    chunk = min(config.eval_chunk, len(rows))
    common = {
        "chunk": chunk,
        "num_pairs": int(len(rows)),
        "features": {
            "image": image_desc,
            "sound": "mean and std over time of the log spectrogram",
            "text": "mean word vector",
        },
        "train_pairs": {
            "image_sound": len(pairs["sound"]["image"]),
            "image_text": len(pairs["text"]["image"]),
        },
    }
    noise = np.random.default_rng(config.seed)
    random_embeddings = {m: noise.standard_normal((len(rows), RANDOM_DIM)) for m in MODALITIES}
    ranks = {"Random": retrieval.direction_ranks(random_embeddings, DIRECTIONS, chunk)}
    results = {
        "Random": {
            "row": "Random",
            "retrieval": retrieval.table_of_ranks(ranks["Random"], RECALL_KS),
            **common,
            "features": dict.fromkeys(MODALITIES, f"Gaussian noise ({RANDOM_DIM}-d)"),
        }
    }
    spaces = {name: fit_spaces(method, pairs) for method, name in METHOD_ROWS.items()}
    ranks.update(chunked_test_ranks(context, rows, featurize_images, spaces, chunk))
    for name in METHOD_ROWS.values():
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
