"""Public sets scored with a trained run: zero-shot sound classification from text prompts and a
linear probe (ESC-50, UrbanSound8K), and caption retrieval (Clotho, AudioCaps, COCO, Flickr30k).

Every input goes through the run's own front-ends: sounds are cut into windows of the trained clip length
(data_pipelines.public_sets.windows: shorter clips padded, longer ones cut, silent windows left out), each
window embedded and the windows pooled ("mean" by default); images are resized and centre-cropped to the
trained size; sentences are embedded with the word vectors stored beside the run's data set, unknown words
dropped. Representations are read at config.eval_layers[0]. A sentence with no known word embeds as
zeros, so it ranks by the tie rule (about the middle), and is counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging
from gensim.models import KeyedVectors

from alignment import public_retrieval, zero_shot
from data_pipelines import text, vision
from data_pipelines.audio import AudioConfig, SilentAudioError
from data_pipelines.builders.features import load_dataset_word_vectors
from data_pipelines.public_sets import CaptionSet, ClassificationSet, prompts, windows
from experiments.evaluation.context import EvalContext
from experiments.runtime.logs import Progress

# Files decoded and embedded per batch: a progress line follows each.
FILE_BATCH = 256


def _layer(context: EvalContext) -> str:
    return context.config.eval_layers[0]


def word_vectors(context: EvalContext) -> KeyedVectors:
    """The word vectors stored beside the run's data set (its vocabulary)."""
    return load_dataset_word_vectors(str(context.builder.data_dir))


def embed_sentences(
    context: EvalContext, sentences: Sequence[str], vectors: KeyedVectors
) -> tuple[np.ndarray, int]:
    """([N, D] embeddings, how many sentences had no known word and embed as zeros)."""
    max_words = context.config.data.text.max_words
    words = np.zeros((len(sentences), max_words, vectors.vector_size), np.float32)
    masks = np.zeros((len(sentences), max_words), bool)
    unknown = 0
    for i, sentence in enumerate(sentences):
        try:
            words[i], masks[i] = text.embed_sentence(sentence, vectors, max_words)
        except ValueError:  # empty, or no word with a vector
            unknown += 1
    layer = _layer(context)
    reps = context.embed({"text": words, "text_mask": masks}, "text", [layer], "embed sentences")
    embeddings = reps[layer]
    embeddings[~masks.any(axis=1)] = 0.0
    return embeddings, unknown


def embed_sound_files(
    context: EvalContext, paths: Sequence[str], pooling: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """([N, D] pooled embeddings of the readable files, {"kept": indices into paths, "unreadable":
    {path: reason}, "windows": total windows})."""
    cfg = AudioConfig.from_config(context.config.data.audio)
    layer = _layer(context)
    progress = Progress("embed sounds", len(paths))
    pooled, kept, unreadable, total_windows = [], [], {}, 0
    for start in range(0, len(paths), FILE_BATCH):
        spectrograms, counts = [], []
        for i in range(start, min(start + FILE_BATCH, len(paths))):
            try:
                clip = windows.file_windows(paths[i], cfg)
            except (SilentAudioError, ValueError, OSError, RuntimeError) as err:
                unreadable[paths[i]] = _reason(err)
                continue
            spectrograms.append(clip)
            counts.append(len(clip))
            kept.append(i)
        if spectrograms:
            reps = context.embed({"sound": np.concatenate(spectrograms)}, "sound", [layer])
            pooled.append(windows.pool_windows(reps[layer], counts, pooling))
            total_windows += int(sum(counts))
        progress.update(min(start + FILE_BATCH, len(paths)))
    dim = context.config.model.fc_dims[-1]
    embeddings = np.concatenate(pooled) if pooled else np.zeros((0, dim), np.float32)
    return embeddings, {"kept": np.asarray(kept, np.int64), "unreadable": unreadable,
                        "windows": total_windows}  # fmt: skip


def embed_image_files(
    context: EvalContext, paths: Sequence[str]
) -> tuple[np.ndarray, dict[str, Any]]:
    """([N, D] embeddings of the readable image files, {"kept", "unreadable"} as embed_sound_files)."""
    size = context.config.data.image_size
    layer = _layer(context)
    progress = Progress("embed images", len(paths))
    chunks, kept, unreadable = [], [], {}
    for start in range(0, len(paths), FILE_BATCH):
        images = []
        for i in range(start, min(start + FILE_BATCH, len(paths))):
            try:
                images.append(vision.load_image(paths[i], size))
            except (ValueError, OSError) as err:
                unreadable[paths[i]] = _reason(err)
                continue
            kept.append(i)
        if images:
            chunks.append(context.embed({"image": np.stack(images)}, "image", [layer])[layer])
        progress.update(min(start + FILE_BATCH, len(paths)))
    dim = context.config.model.fc_dims[-1]
    embeddings = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    return embeddings, {"kept": np.asarray(kept, np.int64), "unreadable": unreadable}


def _reason(err: Exception) -> str:
    """The first line of an error, for the report of unreadable files."""
    text = str(err)
    return text.splitlines()[0][:200] if text else type(err).__name__


def _unreadable_report(unreadable: dict[str, str]) -> dict[str, Any]:
    return {"count": len(unreadable), "examples": dict(list(unreadable.items())[:5])}


def sound_classification(
    context: EvalContext,
    dataset: ClassificationSet,
    templates: Sequence[str] = prompts.DEFAULT_TEMPLATES,
    pooling: str = "mean",
) -> dict[str, Any]:
    """Zero-shot accuracy from text prompts (overall, per fold, mean over folds) and the
    leave-one-fold-out linear probe on the sound embeddings; the prompts' vocabulary coverage."""
    start = time.perf_counter()
    sounds, read = embed_sound_files(context, dataset.paths, pooling)
    if not len(sounds):
        raise ValueError(f"{dataset.name}: no sound file could be read ({len(read['unreadable'])})")
    targets, folds = dataset.targets[read["kept"]], dataset.folds[read["kept"]]
    vectors = word_vectors(context)
    coverage = prompts.vocabulary_coverage(dataset.class_names, vectors.key_to_index, templates)
    for name, missing in coverage.missing.items():
        logging.info("public_eval: class %r loses %s (not in the vocabulary)", name, list(missing))
    sentences = prompts.class_prompts(dataset.class_names, templates)
    flat, no_word = embed_sentences(
        context, [s for per_class in sentences for s in per_class], vectors
    )
    class_embeddings = zero_shot.ensemble_class_embeddings(
        flat.reshape(len(sentences), len(templates), -1)
    )
    num_classes = len(dataset.class_names)
    result = {
        "set": dataset.name,
        "num_clips": int(len(sounds)),
        "num_classes": num_classes,
        "chance": 1.0 / num_classes,
        "zero_shot": zero_shot.zero_shot_accuracy(sounds, class_embeddings, targets, folds),
        # A leave-one-fold-out probe needs two folds; a one-fold folder gets none.
        "linear_probe": zero_shot.fold_linear_probe(sounds, targets, folds, num_classes)
        if len(np.unique(folds)) > 1
        else None,
        "templates": list(templates),
        "pooling": pooling,
        "windows": read["windows"],
        "vocabulary": {
            "missing_words": {k: list(v) for k, v in coverage.missing.items()},
            "classes_without_known_words": list(coverage.unknown),
            "prompts_without_known_words": no_word,
        },
        "unreadable": _unreadable_report(read["unreadable"]),
        "skipped": dataset.skipped.as_dict(),
        "seconds": time.perf_counter() - start,
    }
    return result


def caption_retrieval(
    context: EvalContext, dataset: CaptionSet, pooling: str = "mean"
) -> dict[str, Any]:
    """text->item and item->text R@1/5/10, median rank and mAP@10, every caption a query (items whose
    file could not be read are left out with their captions, and counted)."""
    start = time.perf_counter()
    if dataset.modality == "sound":
        items, read = embed_sound_files(context, dataset.items, pooling)
    else:
        items, read = embed_image_files(context, dataset.items)
    if not len(items):
        raise ValueError(f"{dataset.name}: no {dataset.modality} file could be read")
    position = np.full(len(dataset.items), -1, np.int64)
    position[read["kept"]] = np.arange(len(read["kept"]))
    owners = position[dataset.caption_item]
    keep = owners >= 0
    captions = [c for c, k in zip(dataset.captions, keep, strict=True) if k]
    sentences, no_word = embed_sentences(context, captions, word_vectors(context))
    metrics = public_retrieval.caption_retrieval(
        items, sentences, owners[keep], modality=dataset.modality
    )
    return {
        "set": dataset.name,
        "num_items": int(len(items)),
        "num_captions": int(len(captions)),
        "retrieval": metrics,
        "pooling": pooling if dataset.modality == "sound" else None,
        "captions_without_known_words": no_word,
        "unreadable": _unreadable_report(read["unreadable"]),
        "skipped": dataset.skipped.as_dict(),
        "seconds": time.perf_counter() - start,
    }
