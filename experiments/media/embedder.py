"""Embeddings of files, arrays or sentences of any modality by a trained run.

    embedder = Embedder("runs/world")
    sentences = embedder.embed_sentences(["a big red dog barks"])      # float32 [1, D]
    sounds = embedder.embed_files(["bark.wav", "purr.flac"], "sound")  # float32 [2, D]
    images = embedder.embed_arrays({"image": pixels}, "image")         # pixels uint8 [N, S, S, 3]

The run's saved config (<workdir>/config.json) and data set give the front-ends, the same as
experiments.search.index.query_inputs: a sound file becomes the config.data.audio spectrogram, an image is
resized and centre-cropped to config.data.image_size, a sentence takes the word vectors stored beside the
data set. Every embedding is the representation at config.eval_layers[0], computed in batches sharded over
every device (experiments.runtime.embedding), unnormalized.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from data_pipelines import audio
from data_pipelines.builders.features import load_dataset_word_vectors, word_vectors_file
from experiments.evaluation.context import EvalContext
from experiments.runtime import datasets, run_config
from experiments.runtime.embedding import embed_modality, eval_batch_size
from experiments.search.index import file_features, sentence_features


class Embedder:
    """A trained run, restored once (on first embedding), that embeds inputs of any modality.

    Args:
      workdir: the run's workdir (its config.json, checkpoints and data set are read).
      config: the run's config, when not the one saved in the workdir.
    """

    def __init__(self, workdir: str, config: Any = None):
        config = config if config is not None else run_config.load(workdir).config
        self.workdir = os.path.abspath(workdir)
        self.builder = datasets.open_built(config.data)
        self.context = EvalContext(config, self.builder, workdir)
        self.config = self.context.config
        self.layer = str(self.config.eval_layers[0])
        self.data_dir = os.fspath(self.builder.data_dir)

    @property
    def step(self) -> int:
        """The training step of the restored parameters."""
        return self.context.student.step

    @functools.cached_property
    def vectors(self):
        """The data set's word vectors (gensim KeyedVectors), loaded on first use."""
        return load_dataset_word_vectors(self.data_dir)

    def inputs(self, modality: str, source: Any) -> dict[str, np.ndarray]:
        """One item's model inputs: a sentence (text), or a file path (or image bytes) ->
        {"text": [L, D], "text_mask": [L]}, {"sound": [T, F]} or {"image": uint8 [S, S, 3]}.
        ValueError (UnknownWordsError for a sentence of unknown words) if it cannot be read."""
        if modality == "text":
            words, mask = sentence_features(source, self.vectors, self.config, self.data_dir)
            return {"text": words, "text_mask": mask}
        return {modality: file_features(self.config, modality, source)}

    def embed_arrays(self, arrays: Mapping[str, np.ndarray], modality: str) -> np.ndarray:
        """[N, ...] model inputs of one modality ({"image"}, {"sound"} or {"text", "text_mask"}) ->
        float32 [N, D] representations at self.layer."""
        n = len(next(iter(arrays.values()))) if arrays else 0
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        student = self.context.student
        reps = embed_modality(
            student.embed_fn, student.params, arrays, modality, [self.layer], _batch_size(n)
        )
        return reps[self.layer]

    def embed_one(self, modality: str, source: Any) -> np.ndarray:
        """One sentence, file path (or image bytes) -> float32 [D] (a query)."""
        return self.embed_arrays(stack_inputs([self.inputs(modality, source)]), modality)[0]

    def embed_files(self, paths: Sequence[str], modality: str) -> np.ndarray:
        """Image or sound files -> float32 [N, D]. ValueError naming the first unreadable file."""
        return self.embed_arrays(stack_inputs([self.inputs(modality, p) for p in paths]), modality)

    def embed_sentences(self, sentences: Sequence[str]) -> np.ndarray:
        """Sentences -> float32 [N, D]. UnknownWordsError for a sentence without a known word."""
        return self.embed_arrays(stack_inputs([self.inputs("text", s) for s in sentences]), "text")

    @property
    def dim(self) -> int:
        """D, the width of the representation at self.layer."""
        fc = list(self.config.model.fc_dims)
        widths = {"fc6": fc[0], "fc7": fc[-1], "tower": self.config.model.tower_dim}
        if self.layer not in widths:
            raise ValueError(f"index layer {self.layer!r}: expected one of {sorted(widths)}")
        return int(widths[self.layer])

    def settings(self) -> dict[str, Any]:
        """What makes two runs' embeddings comparable: the run, step, layer, config hash and the
        front-ends' settings (written beside an index and checked when it is resumed or searched)."""
        data = self.config.data
        return {
            "workdir": self.workdir,
            "step": self.step,
            "layer": self.layer,
            "dim": self.dim,
            "config_hash": config_hash(self.config),
            "front_ends": {
                "image_size": int(data.image_size),
                "audio": dataclasses.asdict(audio.AudioConfig.from_config(data.audio)),
                "text_max_words": int(data.text.max_words),
                "word_vectors": word_vectors_file(self.data_dir),
            },
        }


def config_hash(config: Any) -> str:
    """sha256 of the config's sorted JSON (the first 16 hex digits)."""
    text = json.dumps(json.loads(config.to_json_best_effort()), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _batch_size(n: int) -> int:
    """A query's few items fill one device-count batch; more go in the evaluation's batches (each
    size compiles once)."""
    devices = jax.device_count()
    return devices if n <= devices else eval_batch_size()


def stack_inputs(rows: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Items' inputs [{name: [...]}] (Embedder.inputs) -> a batch {name: [N, ...]}."""
    if not rows:
        return {}
    return {name: np.stack([r[name] for r in rows]) for name in rows[0]}
