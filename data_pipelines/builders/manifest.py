"""TFDS builder of a manifest folder: train.jsonl / test.jsonl / validation.jsonl plus the files they name.

Each line: {"id": ..., "image": path, "sound": path, "text": "...", "label": "..."}; paths are relative to
the folder; any subset of image/sound/text/label. Labels are strings, numbered in sorted order over all
splits (label_names.json). Word vectors: a word2vec file of the user's (config.word_vectors) or, by default,
trained on the train captions (plus config.background_corpus, a text file of one sentence per line).

    config = ManifestConfig(name="mydata", folder="/path/to/folder", spec=FeatureSpec(...))
    ManifestDataset(data_dir="data", config=config).download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines import text
from data_pipelines.builders import features
from data_pipelines.builders.base import AlignedBuilder, Example, SpecConfig
from data_pipelines.builders.skips import RowError

MANIFEST_KEYS = frozenset({"id", "image", "sound", "text", "label"})
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(eq=False)
class ManifestConfig(SpecConfig):
    """folder: the manifest folder; word_vectors: optional word2vec file; background_corpus: optional text."""

    folder: str = ""
    word_vectors: str | None = None
    background_corpus: str | None = None


def read_manifest(path: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line number, row dict or RowError) for every non-blank line of a jsonl file."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                yield number, RowError("bad_row", where, f"not UTF-8 ({err})")
                continue
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, RowError("bad_row", where, f"not JSON ({err})")
                continue
            if not isinstance(row, dict):
                yield number, RowError("bad_row", where, "a line must be a JSON object")
                continue
            unknown = sorted(set(row) - MANIFEST_KEYS)
            if unknown:
                yield (
                    number,
                    RowError(
                        "unknown_keys",
                        where,
                        f"unknown keys {unknown}; known: {sorted(MANIFEST_KEYS)}",
                    ),
                )
                continue
            yield number, row


class ManifestDataset(AlignedBuilder):
    """Any local data in the manifest format of DESIGN.md."""

    DESCRIPTION = "A folder of images, sounds and captions listed in jsonl manifests."

    def _manifest_path(self, split: str) -> str:
        return os.path.join(self.builder_config.folder, f"{split}.jsonl")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        del dl_manager
        config = self.builder_config
        if not config.folder or not os.path.isfile(self._manifest_path("train")):
            raise FileNotFoundError(
                f"no manifest at {self._manifest_path('train')}: the folder needs train.jsonl and test.jsonl"
            )
        splits = [s for s in SPLITS if os.path.isfile(self._manifest_path(s))]
        rows = {s: list(read_manifest(self._manifest_path(s))) for s in splits}
        valid = [r for s in splits for _, r in rows[s] if isinstance(r, dict)]
        labels = sorted({str(r["label"]) for r in valid if r.get("label") is not None})
        self._label_ids = {name: i for i, name in enumerate(labels)}
        self._word_vectors = self._load_or_train_vectors(rows["train"])
        features.save_word_vectors(self.data_dir, self._word_vectors)
        features.save_label_names(self.data_dir, labels, [])
        return {s: self._generate_examples(s, rows[s]) for s in splits}

    def _load_or_train_vectors(self, train_rows: list) -> Any:
        config = self.builder_config
        if config.word_vectors:
            return text.load_word_vectors(config.word_vectors)
        corpus = [
            r["text"]
            for _, r in train_rows
            if isinstance(r, dict) and isinstance(r.get("text"), str)
        ]
        if config.background_corpus:
            with open(config.background_corpus, encoding="utf-8", errors="replace") as f:
                corpus += [line for line in f if line.strip()]
        return text.train_word_vectors(corpus, self.spec.text)

    def _generate_examples(self, split: str, rows: list) -> Iterator[tuple[str, Example]]:
        encoder = features.ExampleEncoder(self.spec, self._word_vectors)
        folder = self.builder_config.folder

        def encode(number: int, row: dict[str, Any] | RowError):
            def make() -> Example:
                if isinstance(row, RowError):
                    raise row
                example_id = str(row.get("id", f"{split}-{number}"))
                caption = row.get("text")
                if caption is not None and not isinstance(caption, str):
                    raise RowError("empty_caption", example_id, "text must be a string")
                label = row.get("label")
                return encoder.encode(
                    example_id,
                    image=_path(folder, row.get("image"), example_id),
                    sound=_path(folder, row.get("sound"), example_id),
                    caption=caption,
                    label=self._label_ids[str(label)] if label is not None else -1,
                )

            return make

        yield from self._keep_valid(split, (encode(n, r) for n, r in rows))


def _path(folder: str, relative: Any, example_id: str) -> str | None:
    if relative is None:
        return None
    if not isinstance(relative, str) or not relative:
        raise RowError(
            "bad_row", example_id, f"a file path must be a non-empty string, got {relative!r}"
        )
    return os.path.join(folder, relative)
