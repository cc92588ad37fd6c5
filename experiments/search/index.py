"""Nearest test items to a sentence, a sound file or an image file, in a trained run's shared
representation (what `python -m experiments.retrieve` and the notebook call).

    index = SearchIndex(config, workdir)
    modality, inputs = query_inputs(index.config, index.builder, sentence="a big red dog barks")
    print(format_matches(index.search(modality, inputs, "sound", top_k=5)))

The query goes through the data set's own front-ends: a sound file becomes the config.data.audio
spectrogram, an image is resized and centre-cropped to config.data.image_size, a sentence is embedded with
the word vectors stored beside the data set (unknown words are dropped). Query and test items are compared
by cosine similarity at config.eval_layers[0].

SearchIndex.export writes every test embedding with np.savez (no pickled objects): for each modality m, at each
layer l of config.eval_layers, "{m}_{l}" float32 [N_m, D]; "{m}_ids" str [N_m] and "{m}_labels" int64
[N_m] (-1 when unlabeled) of the test rows holding m; and "text_captions" str [N_text]. Read it with
np.load(path, allow_pickle=False).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from alignment.retrieval import l2_normalize
from alignment.streams import MODALITIES
from data_pipelines import audio, paths, text, vision
from data_pipelines.builders.features import WORD_VECTORS_FILE, load_dataset_word_vectors
from experiments.evaluation.context import EvalContext
from experiments.runtime import datasets


class UnknownWordsError(ValueError):
    """No word of the query sentence has a vector in the data set's vocabulary."""


@dataclasses.dataclass(frozen=True)
class Match:
    """One retrieved test item."""

    rank: int
    cosine: float
    id: str
    label: str
    caption: str


def query_inputs(
    config: Any,
    builder,
    *,
    sentence: str | None = None,
    sound_path: str | None = None,
    image_path: str | None = None,
) -> tuple[str, dict[str, np.ndarray]]:
    """Exactly one query -> (modality, model inputs with a batch of 1).

    Inputs: {"text": [1, L, D], "text_mask": [1, L]}, {"sound": [1, T, F]} or {"image": uint8 [1, S, S, 3]}.
    Raises UnknownWordsError when no word of the sentence has a stored vector.
    """
    given = [v is not None for v in (sentence, sound_path, image_path)]
    if sum(given) != 1:
        raise ValueError("give exactly one query: a sentence, a sound file or an image file")
    if sentence is not None:
        directory = os.fspath(builder.data_dir)
        words, mask = sentence_features(
            sentence, load_dataset_word_vectors(directory), config, directory
        )
        return "text", {"text": words[None], "text_mask": mask[None]}
    if sound_path is not None:
        return "sound", {"sound": file_features(config, "sound", sound_path)[None]}
    assert image_path is not None
    return "image", {"image": file_features(config, "image", image_path)[None]}


def sentence_features(
    sentence: str, vectors, config: Any, directory: str
) -> tuple[np.ndarray, np.ndarray]:
    """A sentence -> (float32 [L, D] word vectors, bool [L] mask) with the data set's word vectors
    (`vectors`, stored in `directory`). Raises UnknownWordsError when no word has a vector."""
    try:
        return text.embed_sentence(sentence, vectors, config.data.text.max_words)
    except text.NoKnownWordError as err:
        raise UnknownWordsError(
            f"no word of {sentence!r} is in the data set's vocabulary "
            f"({os.path.join(directory, WORD_VECTORS_FILE)}, {len(vectors.key_to_index)} words): "
            "use words of its captions"
        ) from err


def file_features(config: Any, modality: str, source: str | bytes) -> np.ndarray:
    """A sound file -> float32 [T, F] config.data.audio spectrogram; an image file (or its bytes) ->
    uint8 [S, S, 3] resized and centre-cropped to config.data.image_size. ValueError if unreadable."""
    if modality == "sound":
        if isinstance(source, bytes):
            raise ValueError("a sound is read from a file path")
        return audio.file_features(source, audio.AudioConfig.from_config(config.data.audio))
    if modality == "image":
        return vision.load_image(source, config.data.image_size)
    raise ValueError(f"files hold a sound or an image, not {modality!r}")


class SearchIndex:
    """A restored checkpoint and the test split, embedded once per modality on first use. `test` holds
    the split's per-row metadata (id, label, caption, has_*); a row's inputs are read when asked for."""

    def __init__(self, config: Any, workdir: str):
        self.builder = datasets.open_built(config.data)
        self.context = EvalContext(config, self.builder, workdir)
        self.config = self.context.config
        self.step = self.context.student.step
        self.layers = list(self.config.eval_layers)
        self.test = self.context.split("test")
        self.names = self.context.label_names

    def read(self, row: int, names: list[str]) -> dict[str, np.ndarray]:
        """{name: [1, ...]}: stored features of one test row (a query, or an item to show)."""
        return self.context.read("test", np.array([row]), names)

    def embed(self, arrays: dict[str, np.ndarray], modality: str) -> dict[str, np.ndarray]:
        """{layer: [N, D]} for the [N, ...] inputs of one modality."""
        return self.context.embed(arrays, modality, self.layers)

    def gallery(self, modality: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(test rows holding `modality` [N_m], their representations {layer: [N_m, D]})."""
        rows = np.flatnonzero(self.test[f"has_{modality}"])
        reps = self.context.embeddings("test", self.layers, [modality])[modality]
        return rows, {layer: values[rows] for layer, values in reps.items()}

    def search(
        self, modality: str, inputs: dict[str, np.ndarray], target: str, top_k: int
    ) -> list[Match]:
        """The top_k test items of `target` by cosine to the query (one row of inputs), best first."""
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        layer = self.layers[0]
        query = l2_normalize(self.embed(inputs, modality)[layer])[0]
        rows, reps = self.gallery(target)
        cosines = l2_normalize(reps[layer]) @ query
        order = np.argsort(-cosines, kind="stable")[:top_k]
        return [
            Match(
                rank=i + 1,
                cosine=float(cosines[j]),
                id=str(self.test["id"][rows[j]]),
                label=self._label(int(self.test["label"][rows[j]])),
                caption=str(self.test["caption"][rows[j]]),
            )
            for i, j in enumerate(order)
        ]

    def export(self, path: str) -> None:
        """Writes every test embedding, id, label and caption to `path` (see the module docstring)."""
        arrays: dict[str, Any] = {}
        for modality in MODALITIES:
            rows, reps = self.gallery(modality)
            for layer, values in reps.items():
                arrays[f"{modality}_{layer}"] = values.astype(np.float32)
            arrays[f"{modality}_ids"] = self.test["id"][rows].astype(str)
            arrays[f"{modality}_labels"] = self.test["label"][rows].astype(np.int64)
            if modality == "text":
                arrays["text_captions"] = self.test["caption"][rows].astype(str)
        # np.savez given a name without the suffix writes "<path>.npz": the same for every kind of path.
        target = paths.as_path(path if path.endswith(".npz") else f"{path}.npz")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            np.savez(f, **arrays)

    def _label(self, label: int) -> str:
        return self.names[label] if 0 <= label < len(self.names) else ""


def format_matches(matches: list[Match]) -> str:
    """One line per match: rank, cosine, id, [label], caption."""
    return "\n".join(
        f"{m.rank:>3}  {m.cosine:+.3f}  {m.id}  [{m.label}]  {m.caption}".rstrip() for m in matches
    )
