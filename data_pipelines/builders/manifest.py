"""TFDS builder of a manifest folder: train.jsonl / test.jsonl / validation.jsonl plus the files they name.

Each line: {"id": ..., "image": path, "sound": path, "text": "...", "label": "...", "fine_label": "..."};
paths are relative to the folder; any subset of image/sound/text/label/fine_label. Labels and fine labels
are strings, each numbered in sorted order over all splits (label_names.json); the teacher learns the fine
labels when there are any, else the labels. Without validation.jsonl, `validation_fraction` of the train
rows (picked by a hash of their id, so the same rows whatever their order) form the validation split.
Word vectors: a word2vec file of the user's (config.word_vectors, used as it is) or, by default, trained
on the train captions (plus config.background_corpus, a text file of one sentence per line), then
centred and normalized (text.center_and_normalize).

    config = ManifestConfig(name="mydata", folder="/path/to/folder", spec=FeatureSpec(...))
    ManifestDataset(data_dir="data", config=config).download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import tensorflow_datasets as tfds
from absl import logging

from data_pipelines import text
from data_pipelines.builders import features
from data_pipelines.builders.base import AlignedBuilder, Example, SpecConfig
from data_pipelines.builders.skips import EmptySplitError, Outcome, RowError

MANIFEST_KEYS = frozenset({"id", "image", "sound", "text", "label", "fine_label"})
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(eq=False)
class ManifestConfig(SpecConfig):
    """folder: the manifest folder; word_vectors: optional word2vec file; background_corpus: optional text;
    validation_fraction: train rows held out as validation when the folder has no validation.jsonl."""

    folder: str = ""
    word_vectors: str | None = None
    background_corpus: str | None = None
    validation_fraction: float = 0.0


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
    """Any local data in the manifest format (README, "Using your own data")."""

    DESCRIPTION = "A folder of images, sounds and captions listed in jsonl manifests."
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "fine_label per row, a held-out validation split, centred and normalized trained "
        "word vectors.",
    }

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
        for split in splits:
            if not rows[split]:  # caught here, before a Beam pipeline would start on it
                raise EmptySplitError(f"{self._manifest_path(split)} lists no rows")
        if "validation" not in rows and config.validation_fraction > 0:
            kept, held = hold_out(rows["train"], config.validation_fraction)
            if held:
                rows["train"], rows["validation"] = kept, held
                splits.insert(1, "validation")
            else:  # a handful of rows: training then runs without validation
                logging.warning(
                    "[validation] none of the %d train rows fell in the held-out %.0f%%: no "
                    "validation split (add validation.jsonl or raise data.validation_fraction)",
                    len(rows["train"]),
                    100 * config.validation_fraction,
                )
        valid = [r for s in splits for _, r in rows[s] if isinstance(r, dict)]
        names = {
            key: sorted({str(r[key]) for r in valid if r.get(key) is not None})
            for key in ("label", "fine_label")
        }
        self._ids = {key: {n: i for i, n in enumerate(names[key])} for key in names}
        self._word_vectors = self._load_or_train_vectors(rows["train"])
        features.save_word_vectors(self.data_dir, self._word_vectors)
        features.save_label_names(self.data_dir, names["label"], names["fine_label"])
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
        return text.center_and_normalize(text.train_word_vectors(corpus, self.spec.text))

    def _generate_examples(self, split: str, rows: list) -> Any:
        encoder = features.ExampleEncoder(
            self.spec, self._word_vectors, features.word_vectors_file(self.data_dir)
        )
        encode_row = ManifestRows(encoder, self.builder_config.folder, split, self._ids)
        return self._encode_split(split, rows, encode_row)


@dataclasses.dataclass(frozen=True)
class ManifestRows:
    """Encodes one manifest line of a split: (line number, row dict or the RowError of the line).
    label_ids: {"label" | "fine_label": {name: id}}."""

    encoder: features.ExampleEncoder
    folder: str
    split: str
    label_ids: dict[str, dict[str, int]]

    def __call__(self, position: int, line: tuple[int, dict[str, Any] | RowError]) -> list[Outcome]:
        return [Outcome.attempt(position, self._encode, *line)]

    def _encode(self, number: int, row: dict[str, Any] | RowError) -> tuple[Example, int | None]:
        if isinstance(row, RowError):
            raise row
        example_id = row_id(row, self.split, number)
        caption = row.get("text")
        if caption is not None and not isinstance(caption, str):
            raise RowError("empty_caption", example_id, "text must be a string")
        ids = {
            key: self.label_ids[key][str(row[key])] if row.get(key) is not None else -1
            for key in ("label", "fine_label")
        }
        return self.encoder.encode(
            example_id,
            image=_path(self.folder, row.get("image"), example_id),
            sound=_path(self.folder, row.get("sound"), example_id),
            caption=caption,
            label=ids["label"],
            fine_label=ids["fine_label"],
        )


def row_id(row: dict[str, Any], split: str, number: int) -> str:
    """The row's id, or "<split>-<line number>" when it has none."""
    return str(row.get("id", f"{split}-{number}"))


def hold_out(rows: list, fraction: float) -> tuple[list, list]:
    """(kept, held-out) train rows: a row is held out when a hash of its id falls below `fraction`, so
    the choice is the same whatever the order or number of the other rows. Unreadable rows stay in
    train, where the build counts them."""
    kept, held = [], []
    for number, row in rows:
        if isinstance(row, dict):
            digest = hashlib.sha1(row_id(row, "train", number).encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2.0**64 < fraction:
                held.append((number, row))
                continue
        kept.append((number, row))
    return kept, held


def _path(folder: str, relative: Any, example_id: str) -> str | None:
    if relative is None:
        return None
    if not isinstance(relative, str) or not relative:
        raise RowError(
            "bad_row", example_id, f"a file path must be a non-empty string, got {relative!r}"
        )
    return os.path.join(folder, relative)
