"""TFDS builder of COCO captions read from a local copy (nothing is downloaded).

The folder (config.folder or manual_dir) holds annotations/captions_train2017.json,
annotations/captions_val2017.json, train2017/ and val2017/. Train: one image+text row per caption.
Test: val2017 with the first caption (lowest annotation id) of each image, 5,000 pairs as in the paper.
Word vectors: config.word_vectors (a word2vec file) or trained on the train captions.

    config = CocoConfig(name="coco", folder="/data/coco", spec=FeatureSpec(...))
    CocoCaptionsFolder(data_dir="data", config=config).download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines import text
from data_pipelines.builders import features
from data_pipelines.builders.base import AlignedBuilder, SpecConfig
from data_pipelines.builders.skips import Outcome

SPLIT_SOURCES = {"train": "train2017", "test": "val2017"}


@dataclasses.dataclass(eq=False)
class CocoConfig(SpecConfig):
    folder: str = ""
    word_vectors: str | None = None
    max_images: int | None = None  # per split; None keeps all


def read_captions(folder: str, source: str) -> list[tuple[int, str, str]]:
    """(annotation id, image file name, caption) for every caption of COCO's captions_<source>.json."""
    path = os.path.join(folder, "annotations", f"captions_{source}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"COCO captions not found: {path} (download COCO 2017 captions and images, then set config.folder)"
        )
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    files = {image["id"]: image["file_name"] for image in data["images"]}
    return sorted(
        (int(a["id"]), files[a["image_id"]], str(a["caption"]))
        for a in data["annotations"]
        if a["image_id"] in files
    )


class CocoCaptionsFolder(AlignedBuilder):
    """COCO 2017 captions as image+text pairs."""

    DESCRIPTION = "COCO 2017 captioned images (local copy)."

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        config = self.builder_config
        folder = config.folder or str(dl_manager.manual_dir)
        captions = {split: read_captions(folder, source) for split, source in SPLIT_SOURCES.items()}
        rows = {split: self._select(split, captions[split]) for split in SPLIT_SOURCES}
        if config.word_vectors:
            self._word_vectors = text.load_word_vectors(config.word_vectors)
        else:
            self._word_vectors = text.train_word_vectors(
                [c for _, _, c in rows["train"]], self.spec.text
            )
        features.save_word_vectors(self.data_dir, self._word_vectors)
        features.save_label_names(self.data_dir, [], [])
        return {
            split: self._generate_examples(
                os.path.join(folder, SPLIT_SOURCES[split]), split, rows[split]
            )
            for split in SPLIT_SOURCES
        }

    def _select(
        self, split: str, captions: list[tuple[int, str, str]]
    ) -> list[tuple[int, str, str]]:
        if split == "test":  # one caption per image: the lowest annotation id
            first: dict[str, tuple[int, str, str]] = {}
            for row in captions:
                first.setdefault(row[1], row)
            captions = sorted(first.values())
        limit = self.builder_config.max_images
        if limit is not None:
            keep = set(sorted({name for _, name, _ in captions})[:limit])
            captions = [row for row in captions if row[1] in keep]
        return captions

    def _generate_examples(
        self, image_folder: str, split: str, rows: list[tuple[int, str, str]]
    ) -> Any:
        encoder = features.ExampleEncoder(
            self.spec, self._word_vectors, features.word_vectors_file(self.data_dir)
        )
        return self._encode_split(split, rows, CaptionRows(encoder, image_folder))


@dataclasses.dataclass(frozen=True)
class CaptionRows:
    """Encodes one (annotation id, image file name, caption) row of a split as an image+text pair."""

    encoder: features.ExampleEncoder
    image_folder: str

    def __call__(self, position: int, row: tuple[int, str, str]) -> list[Outcome]:
        annotation_id, file_name, caption = row
        path = os.path.join(self.image_folder, file_name)
        return [
            Outcome.attempt(
                position, self.encoder.encode, str(annotation_id), image=path, caption=caption
            )
        ]
