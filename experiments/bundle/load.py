"""An exported inference bundle (`python -m experiments.export`), read with jax, numpy, safetensors and the
front-ends (soundfile and librosa for sound, Pillow for images): no TensorFlow, TFDS, Beam, gensim, flax or
orbax is imported.

    bundle = load_bundle("runs/world/bundle")
    bundle.embed_text(["a dog barks"])                  # float32 [1, D], unit rows
    bundle.embed_sound(["bark.wav", samples])           # samples: a waveform at bundle.audio.sample_rate
    bundle.embed_image(["dog.jpg", uint8_array])

Inputs go through the project's own front-ends with the run's settings (data_pipelines/audio.py, vision.py,
words.py), then through the run's network, exported with jax.export. docs/export.md lists the files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
import safetensors.numpy

from alignment.retrieval import l2_normalize
from alignment.streams import MODALITIES, MODALITY_INPUTS
from data_pipelines import audio, vision, words

FORMAT_VERSION = 1
MANIFEST_FILE = "bundle.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
WORD_VECTORS_FILE = "word_vectors.safetensors"
WORD_TABLE_KEY = "vectors"
VOCABULARY_FILE = "vocabulary.json"
# What bundle.json holds besides format_version (export.py writes it).
MANIFEST_KEYS = ("files", "layers", "dims", "frontend", "step")
# What an item of each modality is called in messages.
ITEM_NAMES = {"image": "image", "sound": "sound", "text": "sentence"}
# Rows per call of an exported function: the last batch is padded, so each modality compiles once.
BATCH_SIZE = 32


class BundleError(ValueError):
    """A bundle file is missing, corrupted or of another format version (a one-line message)."""


def function_file(modality: str) -> str:
    """The serialized jax.export function of a modality, e.g. "embed_image.jax"."""
    return f"embed_{modality}.jax"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A loaded bundle: embed_* give float32 [N, D] unit rows at `layer` (default layers[0], the layer
    the run's retrieval uses).

    layers: the layers the exported functions return (the run's config.eval_layers); dims: their widths.
    audio: the run's spectrogram settings; image_size: the square images are resized and cropped to;
    max_words: the words of a sentence kept; step: the training step of the exported weights.
    """

    directory: str
    layers: tuple[str, ...]
    dims: dict[str, int]
    audio: audio.AudioConfig
    image_size: int
    max_words: int
    step: int
    weights: dict[str, jax.Array]
    vocabulary: dict[str, int]
    word_table: np.ndarray
    functions: dict[str, Callable[..., dict[str, jax.Array]]]

    def embed_text(self, sentences: Sequence[str], layer: str | None = None) -> np.ndarray:
        """Sentences -> float32 [N, D]. Unknown words are dropped; a sentence with no known word is a
        ValueError naming it."""
        return self._embed_items("text", sentences, layer)

    def embed_sound(
        self, sounds: Sequence[str | os.PathLike | np.ndarray], layer: str | None = None
    ) -> np.ndarray:
        """Sound files (wav, flac, ogg, mp3) or waveforms ([samples] or [samples, channels] at
        audio.sample_rate) -> float32 [N, D], each from its centre clip_seconds window."""
        return self._embed_items("sound", sounds, layer)

    def embed_image(
        self, images: Sequence[str | os.PathLike | bytes | np.ndarray], layer: str | None = None
    ) -> np.ndarray:
        """Image files, encoded bytes or arrays ([H, W] or [H, W, 1-4], any size; see
        vision.to_rgb for dtypes) -> float32 [N, D], each resized and centre-cropped to image_size."""
        return self._embed_items("image", images, layer)

    def embed_readable(
        self, modality: str, items: Sequence[Any], layer: str | None = None
    ) -> tuple[np.ndarray, list[int], list[str]]:
        """Like embed_<modality>, skipping the items the front-ends cannot read (a folder's stray or
        broken files) -> (float32 [K, D] unit rows, the K kept items' indices, one line per skipped
        item)."""
        rows, kept, skipped = [], [], []
        for i, item in enumerate(_listed(items, modality)):
            try:
                rows.append(self.inputs(modality, item))
                kept.append(i)
            except ValueError as err:
                skipped.append(_item_error(modality, i, item, err))
        return self.embed_arrays(_stacked(rows, modality), modality, layer), kept, skipped

    def inputs(self, modality: str, item: Any) -> dict[str, np.ndarray]:
        """One item -> the network's inputs for it, through the run's front-ends: a sentence ->
        {"text": float32 [L, D], "text_mask": bool [L]}; a sound file or waveform -> {"sound": float32
        [T, F]}; an image file, bytes or array -> {"image": uint8 [S, S, 3]}. ValueError when it cannot
        be read."""
        if modality == "text":
            vectors, mask = words.sentence_vectors(
                item, self.vocabulary, self.word_table, self.max_words
            )
            return {"text": vectors, "text_mask": mask}
        if modality == "sound":
            if isinstance(item, np.ndarray):
                return {"sound": audio.waveform_features(item, self.audio)}
            return {"sound": audio.file_features(item, self.audio)}
        if modality == "image":
            if isinstance(item, np.ndarray):
                return {"image": vision.resize_and_crop(item, self.image_size)}
            return {"image": vision.load_image(item, self.image_size)}
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")

    def embed_arrays(
        self, arrays: Mapping[str, np.ndarray], modality: str, layer: str | None = None
    ) -> np.ndarray:
        """The network's [N, ...] inputs of one modality (image uint8 [N, S, S, 3]; sound [N, T, F];
        text [N, L, D] and text_mask bool [N, L], as `inputs` names them) -> float32 [N, D] unit rows
        at `layer` (N may be 0)."""
        layer = layer or self.layers[0]
        if layer not in self.layers:
            raise ValueError(
                f"layer {layer!r} was not exported; the bundle has {list(self.layers)}"
            )
        inputs = [arrays[name] for name in MODALITY_INPUTS[modality]]
        count = len(inputs[0])
        pieces = [np.zeros((0, self.dims[layer]), np.float32)]
        for start in range(0, count, BATCH_SIZE):
            batch = [_pad(x[start : start + BATCH_SIZE], BATCH_SIZE) for x in inputs]
            reps = self.functions[modality](self.weights, *batch)[layer]
            pieces.append(np.asarray(reps, np.float32)[: min(BATCH_SIZE, count - start)])
        return l2_normalize(np.concatenate(pieces))

    def settings(self) -> dict[str, Any]:
        """What makes two sets of embeddings comparable (the bundle, step, layer, width, front-ends),
        in the form experiments.media's index records beside its shards: with `inputs` and
        `embed_arrays`, a bundle indexes a folder through experiments.media.build.build_index."""
        return {
            "bundle": os.path.abspath(self.directory),
            "step": self.step,
            "layer": self.layers[0],
            "dim": self.dims[self.layers[0]],
            "front_ends": {
                "image_size": self.image_size,
                "audio": dataclasses.asdict(self.audio),
                "text_max_words": self.max_words,
                "vocabulary": len(self.vocabulary),
            },
        }

    def _embed_items(self, modality: str, items: Sequence[Any], layer: str | None) -> np.ndarray:
        rows = []
        for i, item in enumerate(_listed(items, modality)):
            try:
                rows.append(self.inputs(modality, item))
            except ValueError as err:
                raise ValueError(_item_error(modality, i, item, err)) from err
        if not rows:
            raise ValueError(f"no {ITEM_NAMES[modality]}s to embed")
        return self.embed_arrays(_stacked(rows, modality), modality, layer)


def _listed(items: Sequence[Any], modality: str) -> Sequence[Any]:
    """`items`, refusing one item given where a list is expected (a str would embed each letter)."""
    if isinstance(items, (str, bytes, np.ndarray)):
        raise ValueError(f"give a list of {ITEM_NAMES[modality]}s, not one {type(items).__name__}")
    return items


def _item_error(modality: str, index: int, item: Any, err: ValueError) -> str:
    """One line naming the item: its index, and the item itself when it is a path or a sentence."""
    shown = f" {os.fspath(item)!r}" if isinstance(item, (str, os.PathLike)) else ""
    return f"{ITEM_NAMES[modality]} {index}{shown}: {err}"


def _stacked(rows: list[dict[str, np.ndarray]], modality: str) -> dict[str, np.ndarray]:
    """Items' inputs [{name: [...]}] -> {name: [N, ...]}; N may be 0."""
    if rows:
        return {name: np.stack([row[name] for row in rows]) for name in rows[0]}
    return {name: np.zeros((0,), np.float32) for name in MODALITY_INPUTS[modality]}


def _pad(x: np.ndarray, size: int) -> np.ndarray:
    """[n, ...] -> [size, ...] with zero rows after the n real ones."""
    return (
        np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)])
        if len(x) < size
        else x
    )


def load_bundle(directory: str | os.PathLike) -> Bundle:
    """Reads and checks a bundle folder. BundleError (one line) when a file is missing, changed since the
    export (its sha256 differs from bundle.json's) or of another format version."""
    directory = os.fspath(directory)
    manifest = _manifest(directory)
    files = {
        name: _read_checked(directory, name, digest) for name, digest in manifest["files"].items()
    }
    for name in (WEIGHTS_FILE, WORD_VECTORS_FILE, VOCABULARY_FILE, *map(function_file, MODALITIES)):
        if name not in files:
            raise BundleError(
                f"{os.path.join(directory, MANIFEST_FILE)} lists no {name}: export again"
            )
    frontend = manifest["frontend"]
    vocabulary = json.loads(files[VOCABULARY_FILE])
    return Bundle(
        directory=directory,
        layers=tuple(manifest["layers"]),
        dims={layer: int(dim) for layer, dim in manifest["dims"].items()},
        audio=audio.AudioConfig.from_config(frontend["audio"]),
        image_size=int(frontend["image_size"]),
        max_words=int(frontend["max_words"]),
        step=int(manifest["step"]),
        weights=jax.device_put(safetensors.numpy.load(files[WEIGHTS_FILE])),
        vocabulary={word: i for i, word in enumerate(vocabulary)},
        word_table=safetensors.numpy.load(files[WORD_VECTORS_FILE])[WORD_TABLE_KEY],
        functions={m: _function(directory, m, files[function_file(m)]) for m in MODALITIES},
    )


def _manifest(directory: str) -> dict[str, Any]:
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        what = "no such folder" if not os.path.isdir(directory) else f"{MANIFEST_FILE} is missing"
        raise BundleError(
            f"{directory} is not an inference bundle ({what}): write one with "
            "`python -m experiments.export --workdir=<run> --out=<folder>`"
        )
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path} is corrupted ({err}): export the bundle again") from err
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format {version!r}, this loader reads format {FORMAT_VERSION}: "
            "export the bundle again with this version of the project"
        )
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise BundleError(f"{path} is corrupted (no {', '.join(missing)}): export the bundle again")
    return manifest


def _read_checked(directory: str, name: str, digest: str) -> bytes:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise BundleError(f"{path} is missing: copy the whole bundle folder, or export it again")
    with open(path, "rb") as f:
        data = f.read()
    if sha256(data) != digest:
        raise BundleError(
            f"{path} is corrupted (its sha256 differs from the one {MANIFEST_FILE} recorded at export)"
        )
    return data


def _function(directory: str, modality: str, data: bytes) -> Callable[..., dict[str, jax.Array]]:
    """The jitted call of a serialized jax.export function: (weights, *inputs) -> {layer: [B, D]}."""
    try:
        exported = jax.export.deserialize(bytearray(data))
    except Exception as err:  # the flatbuffer reader raises many types for a blob it cannot read
        raise BundleError(
            f"{os.path.join(directory, function_file(modality))} cannot be read by jax "
            f"{jax.__version__} ({type(err).__name__}: {err})"
        ) from err
    # "cuda" or "rocm" where jax.default_backend() says "gpu".
    platform = jax.export.default_export_platform()
    if platform not in exported.platforms:
        raise BundleError(
            f"{function_file(modality)} was exported for {list(exported.platforms)}, not {platform}: "
            "export again, or run on one of those"
        )
    return jax.jit(exported.call)
