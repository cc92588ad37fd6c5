"""The stored example: feature spec, encoding of raw inputs, and the files kept beside a data set.

Every builder stores the same features (missing modalities zero-filled with has_* = False):
  id: str, image: uint8 [S, S, 3], sound: float [T, F], text: float [L, D], text_mask: bool [L],
  caption: str, has_image/has_sound/has_text: bool, label: int64 (-1 if none), fine_label: int64 (-1 if none),
  teacher_probs: float32 [C] (only when spec.num_teacher_classes > 0).
sound and text are stored as float32, or as float16 (spec.float_storage) to halve their bytes; they are
read back as float32 either way (data_pipelines.records).
Beside the data set: word_vectors.txt (word2vec text format; embed new text with these), label_names.json,
skipped.json (see skips.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from gensim.models import KeyedVectors

from data_pipelines import audio, paths, text, vision
from data_pipelines.builders.skips import RowError

WORD_VECTORS_FILE = "word_vectors.txt"
LABEL_NAMES_FILE = "label_names.json"
FLOAT_STORAGE = ("float32", "float16")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Shapes of the stored features: image [S, S, 3], sound [T, F] (from audio), text [L, D] (from text)."""

    image_size: int = 40
    audio: audio.AudioConfig = dataclasses.field(default_factory=audio.AudioConfig)
    text: text.TextConfig = dataclasses.field(default_factory=text.TextConfig)
    num_teacher_classes: int = 0
    # "float32" or "float16": the stored dtype of sound and text. Out of repr, which names built data
    # sets (experiments/runtime/datasets.py adds it there only when it is not the default).
    float_storage: str = dataclasses.field(default="float32", repr=False)

    def __post_init__(self):
        if self.float_storage not in FLOAT_STORAGE:
            raise ValueError(
                f"config.data.float_storage={self.float_storage!r}: expected one of {FLOAT_STORAGE}"
            )

    @classmethod
    def from_config(cls, data_cfg: Any, num_teacher_classes: int = 0) -> FeatureSpec:
        """From config.data (image_size, audio, text), a ConfigDict or mapping."""
        get = (
            (lambda k: data_cfg[k])
            if isinstance(data_cfg, Mapping)
            else (lambda k: getattr(data_cfg, k))
        )
        audio_cfg = audio.AudioConfig.from_config(get("audio"))
        audio_cfg.check_time_steps()
        return cls(
            image_size=int(get("image_size")),
            audio=audio_cfg,
            text=text.TextConfig.from_config(get("text")),
            num_teacher_classes=num_teacher_classes,
            float_storage=str(get("float_storage")),
        )

    def features(self) -> tfds.features.FeaturesDict:
        size, (steps, bins), (words, dim) = self.image_size, self.audio.shape, self.text.shape
        floats = np.dtype(self.float_storage)
        # Arrays are stored as raw bytes: serializing them as int64/float lists costs more than
        # computing the features, and the bytes decode straight into the array on read.
        raw = tfds.features.Encoding.BYTES
        spec = {
            "id": tfds.features.Text(),
            "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8, encoding=raw),
            "sound": tfds.features.Tensor(shape=(steps, bins), dtype=floats, encoding=raw),
            "text": tfds.features.Tensor(shape=(words, dim), dtype=floats, encoding=raw),
            "text_mask": tfds.features.Tensor(shape=(words,), dtype=np.bool_),
            "caption": tfds.features.Text(),
            "has_image": tfds.features.Tensor(shape=(), dtype=np.bool_),
            "has_sound": tfds.features.Tensor(shape=(), dtype=np.bool_),
            "has_text": tfds.features.Tensor(shape=(), dtype=np.bool_),
            "label": tfds.features.Tensor(shape=(), dtype=np.int64),
            "fine_label": tfds.features.Tensor(shape=(), dtype=np.int64),
        }
        if self.num_teacher_classes:
            spec["teacher_probs"] = tfds.features.Tensor(
                shape=(self.num_teacher_classes,), dtype=np.float32, encoding=raw
            )
        return tfds.features.FeaturesDict(spec)


class ExampleEncoder:
    """Raw inputs -> one stored example, or RowError naming the reason it cannot be stored."""

    def __init__(
        self,
        spec: FeatureSpec,
        word_vectors: KeyedVectors | None,
        vectors_file: str | None = None,
    ):
        """vectors_file: where word_vectors are saved (word2vec format). Given, a pickled encoder carries
        this path instead of the vectors and reads them on first use, so a Beam pipeline ships the
        encoder to its workers without the vocabulary."""
        if word_vectors is not None and word_vectors.vector_size != spec.text.word_dim:
            raise ValueError(
                f"word vectors have {word_vectors.vector_size} dims, the spec expects {spec.text.word_dim}"
            )
        self.spec = spec
        self._word_vectors = word_vectors
        self.vectors_file = vectors_file

    @property
    def word_vectors(self) -> KeyedVectors | None:
        if self._word_vectors is None and self.vectors_file is not None:
            self._word_vectors = text.load_word_vectors(self.vectors_file)
        return self._word_vectors

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.vectors_file is not None:
            state["_word_vectors"] = None
        return state

    def encode(
        self,
        example_id: str,
        *,
        image: np.ndarray | str | None = None,
        sound: np.ndarray | str | None = None,
        caption: str | None = None,
        label: int = -1,
        fine_label: int = -1,
        teacher_probs: np.ndarray | None = None,
    ) -> tuple[dict[str, Any], int | None]:
        """(example, clip_delta): the stored features, and how many samples the sound lost to cropping
        (> 0) or gained from zero-padding (< 0) to fit the clip (None without sound). image: array or file
        path; sound: waveform at spec.audio.sample_rate or file path."""
        spec = self.spec
        example: dict[str, Any] = {
            "id": example_id,
            "image": np.zeros((spec.image_size, spec.image_size, 3), np.uint8),
            "sound": np.zeros(spec.audio.shape, np.float32),
            "text": np.zeros(spec.text.shape, np.float32),
            "text_mask": np.zeros(spec.text.max_words, bool),
            "caption": "",
            "has_image": image is not None,
            "has_sound": sound is not None,
            "has_text": caption is not None,
            "label": int(label),
            "fine_label": int(fine_label),
        }
        if image is None and sound is None and caption is None:
            raise RowError("no_modality", example_id, "the row has no image, sound or text")
        if image is not None:
            example["image"] = self._image(example_id, image)
        clip_delta = None
        if sound is not None:
            example["sound"], clip_delta = self._sound(example_id, sound)
        if caption is not None:
            example["text"], example["text_mask"] = self._text(example_id, caption)
            example["caption"] = caption
        if spec.num_teacher_classes:
            example["teacher_probs"] = self._teacher_probs(example_id, teacher_probs)
        for name in ("sound", "text"):
            stored = example[name].astype(spec.float_storage)
            if not np.all(np.isfinite(stored)):
                raise RowError(
                    "bad_row", example_id, f"{name} values overflow {spec.float_storage}"
                )
            example[name] = stored
        return example, clip_delta

    def _image(self, example_id: str, image: np.ndarray | str) -> np.ndarray:
        where = image if isinstance(image, str) else example_id
        if isinstance(image, str) and not os.path.isfile(image):
            raise RowError("missing_file", where, "image file not found")
        try:
            if isinstance(image, str):
                return vision.load_image(image, self.spec.image_size)
            return vision.resize_and_crop(image, self.spec.image_size)
        except ValueError as err:
            raise RowError("unreadable_image", where, str(err)) from err

    def _sound(self, example_id: str, sound: np.ndarray | str) -> tuple[np.ndarray, int]:
        where = sound if isinstance(sound, str) else example_id
        if isinstance(sound, str) and not os.path.isfile(sound):
            raise RowError("missing_file", where, "sound file not found")
        try:
            if isinstance(sound, str):
                wave = audio.load_audio(sound, self.spec.audio.sample_rate)
            else:
                wave = audio.as_float_waveform(sound)
        except ValueError as err:
            raise RowError("unreadable_sound", where, str(err)) from err
        try:
            features = audio.waveform_features(wave, self.spec.audio)
        except audio.SilentAudioError as err:
            raise RowError("silent_sound", where, str(err)) from err
        except ValueError as err:
            raise RowError("unreadable_sound", where, str(err)) from err
        return features, len(wave) - self.spec.audio.clip_samples

    def _text(self, example_id: str, caption: str) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.word_vectors
        if vectors is None:
            raise AssertionError("a caption needs word vectors: pass them to the encoder")
        try:
            return text.embed_sentence(caption, vectors, self.spec.text.max_words)
        except text.NoKnownWordError as err:
            raise RowError("all_words_unknown", example_id, str(err)) from err
        except ValueError as err:
            raise RowError("empty_caption", example_id, str(err)) from err

    def _teacher_probs(self, example_id: str, probs: np.ndarray | None) -> np.ndarray:
        shape = (self.spec.num_teacher_classes,)
        values = np.asarray(probs, np.float32) if probs is not None else None
        if values is None or values.shape != shape or not np.all(np.isfinite(values)):
            raise RowError("bad_row", example_id, f"teacher_probs must be finite float {shape}")
        return values


def save_word_vectors(dataset_dir: str, vectors: KeyedVectors) -> None:
    """Stores the vectors used to embed captions beside the data set (word2vec text format)."""
    paths.as_path(dataset_dir).mkdir(parents=True, exist_ok=True)
    text.save_word_vectors(vectors, word_vectors_file(dataset_dir))


def word_vectors_file(dataset_dir: str) -> str:
    """Where save_word_vectors puts a data set's vectors."""
    return os.fspath(paths.as_path(dataset_dir) / WORD_VECTORS_FILE)


def load_dataset_word_vectors(dataset_dir: str) -> KeyedVectors:
    """The vectors a data set was built with: embed evaluation text with these."""
    return text.load_word_vectors(word_vectors_file(dataset_dir))


def save_label_names(dataset_dir: str, labels: list[str], fine_labels: list[str]) -> None:
    """label_names.json: {"labels": names indexed by label, "fine_labels": names indexed by fine_label}."""
    directory = paths.as_path(dataset_dir)
    directory.mkdir(parents=True, exist_ok=True)
    names = {"labels": list(labels), "fine_labels": list(fine_labels)}
    (directory / LABEL_NAMES_FILE).write_text(json.dumps(names, indent=1), encoding="utf-8")


def load_label_names(dataset_dir: str) -> dict[str, list[str]]:
    """label_names.json of a built data set; FileNotFoundError when it has none."""
    return json.loads((paths.as_path(dataset_dir) / LABEL_NAMES_FILE).read_text(encoding="utf-8"))
