"""Writes a trained run's inference bundle: what `python -m experiments.export` calls.

The student network's weights (safetensors), one jax.export function per modality that takes them as an
argument (a symbolic batch dimension; lowered for CPU, CUDA and TPU), the data set's word vectors (a
vocabulary and a float32 table), the front-end settings and the run's config; bundle.json records each
file's sha256. load.py reads it back without the training stack; docs/export.md describes the files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from flax import traverse_util

from alignment.models import TriModalNet
from alignment.streams import MODALITIES, MODALITY_INPUTS
from data_pipelines import audio, paths
from data_pipelines.builders.features import load_dataset_word_vectors
from experiments.bundle import load
from experiments.evaluation.context import EvalContext
from experiments.runtime import datasets

# Where the bundle may run: jax.export lowers each function for every one of these.
PLATFORMS = ("cpu", "cuda", "tpu")
# Parameter paths in the weights file: {"vision": {"conv1": {"kernel": ...}}} -> "vision/conv1/kernel".
SEPARATOR = "/"


def export_bundle(config: Any, workdir: str, out: str) -> dict[str, Any]:
    """Writes the bundle of the run in `workdir` (its student as evaluation restores it) to the folder
    `out` (local or a URI) and returns its manifest (bundle.json)."""
    builder = datasets.open_built(config.data)
    context = EvalContext(config, builder, workdir)
    config, student = context.config, context.student
    weights = {
        name: np.asarray(value)
        for name, value in traverse_util.flatten_dict(
            jax.device_get(student.params), sep=SEPARATOR
        ).items()
    }
    vectors = load_dataset_word_vectors(os.fspath(builder.data_dir))
    layers = list(config.eval_layers)
    files = {
        load.CONFIG_FILE: json.dumps(json.loads(config.to_json_best_effort()), indent=1).encode(),
        load.WEIGHTS_FILE: safetensors.numpy.save(weights),
        load.WORD_VECTORS_FILE: safetensors.numpy.save(
            {load.WORD_TABLE_KEY: np.asarray(vectors.vectors, np.float32)}
        ),
        load.VOCABULARY_FILE: json.dumps(list(vectors.index_to_key), ensure_ascii=False).encode(),
    }
    for modality in MODALITIES:
        exported = export_embed(student.model, weights, modality, layers)
        files[load.function_file(modality)] = bytes(exported.serialize())
    # The layers are the shared head's (and the towers' common width): the same for every modality.
    outputs = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    manifest = {
        "format_version": load.FORMAT_VERSION,
        "step": student.step,
        "layers": layers,
        "dims": {layer: int(outputs[layer].shape[-1]) for layer in layers},
        "frontend": {
            "image_size": int(config.data.image_size),
            "audio": dataclasses.asdict(audio.AudioConfig.from_config(config.data.audio)),
            "max_words": int(config.data.text.max_words),
            "word_dim": int(vectors.vector_size),
        },
        "platforms": list(PLATFORMS),
        "jax_version": jax.__version__,
        "files": {name: load.sha256(data) for name, data in files.items()},
    }
    directory = paths.as_path(out)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    # Written last: a folder whose export stopped half-way has no manifest and is refused as a whole.
    (directory / load.MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def export_embed(
    model: TriModalNet, weights: dict[str, np.ndarray], modality: str, layers: list[str]
) -> jax.export.Exported:
    """embed(weights, *inputs) -> {layer: float32 [B, D]} of one modality, exported with a symbolic
    batch B. weights: {"tower/layer/kernel": array} (the flat names of the weights file); inputs:
    image uint8 [B, S, S, 3] | sound [B, T, F] | text [B, L, D] and its bool mask [B, L]."""
    (batch,) = jax.export.symbolic_shape("batch")
    examples = model.example_inputs()
    inputs = [
        jax.ShapeDtypeStruct((batch, *examples[name].shape[1:]), examples[name].dtype)
        for name in MODALITY_INPUTS[modality]
    ]
    specs = {
        name: jax.ShapeDtypeStruct(value.shape, value.dtype) for name, value in weights.items()
    }
    embed = jax.jit(_embed_fn(model, modality, layers))
    return jax.export.export(embed, platforms=PLATFORMS)(specs, *inputs)


def _embed_fn(model: TriModalNet, modality: str, layers: list[str]) -> Callable[..., Any]:
    def embed(weights: dict[str, jax.Array], *inputs: jax.Array) -> dict[str, jax.Array]:
        params = traverse_util.unflatten_dict(weights, sep=SEPARATOR)
        x, *mask = inputs
        reps = cast(dict[str, jax.Array], model.apply({"params": params}, x, modality, *mask))
        return {layer: reps[layer].astype(jnp.float32) for layer in layers}

    return embed
