"""The bundled world: splits of images, sounds and captions of shared concepts, and a manifest writer.

It stands in for the paper's data: "train" rows are either image+sound (the videos) or image+text (the
captioned images), always of different instances, interleaved over the index; "validation" and "test"
rows are triplets (image, sound and caption of one instance) for retrieval in every direction.

Every sample is a pure function of (seed, split, index): it draws from
np.random.default_rng([seed, split_id, index]) alone (and its concept from a shuffled block of labels),
so samples can be made in any order, in parallel, or per host shard.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from data_pipelines.world.captions import background_sentences, make_caption
from data_pipelines.world.concepts import (
    VARIANT_STYLES,
    draw_instance,
    fine_class_name,
    make_concepts,
)
from data_pipelines.world.images import render_image
from data_pipelines.world.sounds import render_sound

SPLITS = ("train", "validation", "test")


@functools.lru_cache(maxsize=4096)
def _concept_order(seed: int, stream: int, block: int, num_concepts: int) -> list[int]:
    """The concepts of one block of rows, in a shuffled order (cached: rows come block by block)."""
    return np.random.default_rng([seed, stream, block]).permutation(num_concepts).tolist()


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Shape and size of the world.

    The default is what `make demo` trains on (a few minutes on 2 CPU cores); small() is for tests;
    full() has 42 concepts (the paper's classifier-transfer categories) and 10,000 test triplets.
    """

    num_concepts: int = 24
    variants_per_concept: int = 2
    image_size: int = 40
    sample_rate: int = 8000
    clip_seconds: float = 1.0
    caption_words: int = 16
    seed: int = 0
    num_train_sound: int = 20_000
    num_train_text: int = 20_000
    num_validation: int = 1_000
    num_test: int = 5_000

    def __post_init__(self) -> None:
        if not 1 <= self.variants_per_concept <= 2 ** len(VARIANT_STYLES):
            raise ValueError(
                f"variants_per_concept must be in [1, {2 ** len(VARIANT_STYLES)}], "
                f"got {self.variants_per_concept}"
            )
        if self.image_size < 16 or self.sample_rate < 8000 or self.caption_words < 8:
            raise ValueError(
                "need image_size >= 16, sample_rate >= 8000 (partials reach 3.6 kHz) and "
                f"caption_words >= 8, got {self}"
            )
        sizes = (self.num_train_sound, self.num_train_text, self.num_validation, self.num_test)
        if min(sizes) < 0:
            raise ValueError(f"split sizes must be >= 0, got {sizes}")

    @classmethod
    def small(cls, **overrides: Any) -> WorldConfig:
        """A few hundred rows: generates in about a second."""
        sizes = dict(num_train_sound=128, num_train_text=128, num_validation=48, num_test=96)
        return cls(**{**sizes, **overrides})

    @classmethod
    def full(cls, **overrides: Any) -> WorldConfig:
        sizes = dict(
            num_concepts=42,
            image_size=64,
            num_train_sound=150_000,
            num_train_text=150_000,
            num_validation=5_000,
            num_test=10_000,
        )
        return cls(**{**sizes, **overrides})


class World:
    """Procedural tri-modal data of `config.num_concepts` concepts.

    Labels are balanced: every block of num_concepts consecutive rows of one kind holds each concept
    once, in a shuffled order. Fine labels (the teacher's classes) are concept * variants + variant.
    """

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        self.concepts = make_concepts(self.config.num_concepts, self.config.seed)
        self.concept_names = [c.name for c in self.concepts]
        v = self.config.variants_per_concept
        self.fine_class_names = [fine_class_name(c, i) for c in self.concepts for i in range(v)]
        self.num_fine_classes = len(self.fine_class_names)

    def split_size(self, split: str) -> int:
        c = self.config
        sizes = dict(
            train=c.num_train_sound + c.num_train_text,
            validation=c.num_validation,
            test=c.num_test,
        )
        if split not in sizes:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return sizes[split]

    def _kind_and_rank(self, split: str, index: int) -> tuple[str, int]:
        """The row's kind and its position among the split's rows of that kind."""
        if split != "train":
            return "triplet", index
        s, n = self.config.num_train_sound, self.split_size("train")
        sound_before = index * s // n
        if (index + 1) * s // n > sound_before:
            return "image_sound", sound_before
        return "image_text", index - sound_before

    def sample(self, split: str, index: int) -> dict[str, Any]:
        """Row `index` of `split`.

        Returns dict(id=str, image=uint8 [S, S, 3], waveform=float32 [round(clip_seconds *
        sample_rate)] in [-1, 1] or None, caption=str or None, label=int, fine_label=int,
        attributes=dict(size="small"|"medium"|"big", colour=str, count=1..3), kind=str). kind is
        "image_sound" (caption is None), "image_text" (waveform is None) or "triplet" (all present).
        """
        kind, concept, instance = self._instance(split, index)
        c = self.config
        # Each modality draws from its own stream, so a caption can be made without rendering
        # the image and sound (the word-vector corpus needs only captions).
        image = render_image(self._rng(split, index, 1), instance, c.image_size)
        waveform = caption = None
        if kind != "image_text":
            waveform = render_sound(
                self._rng(split, index, 2), instance, c.sample_rate, c.clip_seconds
            )
        if kind != "image_sound":
            caption = make_caption(
                self._rng(split, index, 3), instance, self.concepts, c.caption_words
            )
        return dict(
            id=f"{split}-{index:07d}",
            image=image,
            waveform=waveform,
            caption=caption,
            label=concept.index,
            fine_label=concept.index * c.variants_per_concept + instance.variant,
            attributes=instance.attributes(),
            kind=kind,
        )

    def caption(self, split: str, index: int) -> str | None:
        """The caption of row `index` (None for an image_sound row), without rendering anything else."""
        kind, _, instance = self._instance(split, index)
        if kind == "image_sound":
            return None
        rng = self._rng(split, index, 3)
        return make_caption(rng, instance, self.concepts, self.config.caption_words)

    def _rng(self, split: str, index: int, part: int) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, SPLITS.index(split), index, part])

    def _instance(self, split: str, index: int):
        """(kind, concept, instance) of a row: every attribute the modalities must agree on."""
        size = self.split_size(split)
        if not 0 <= index < size:
            raise IndexError(f"index {index} out of range for split {split!r} of {size} rows")
        c = self.config
        split_id = SPLITS.index(split)
        kind, rank = self._kind_and_rank(split, index)
        stream = 100 + 3 * split_id + ("image_sound", "image_text", "triplet").index(kind)
        order = _concept_order(c.seed, stream, rank // c.num_concepts, c.num_concepts)
        concept = self.concepts[order[rank % c.num_concepts]]
        instance = draw_instance(self._rng(split, index, 0), concept, c.variants_per_concept)
        return kind, concept, instance

    def examples(self, split: str) -> Iterator[dict[str, Any]]:
        for i in range(self.split_size(split)):
            yield self.sample(split, i)

    def background_corpus(self, num_sentences: int) -> list[str]:
        """Sentences in the captions' vocabulary but in other contexts (never a caption)."""
        rng = np.random.default_rng([self.config.seed, 7])
        return background_sentences(rng, self.concepts, num_sentences)

    def write_manifest(self, folder: str | os.PathLike, limit: int | None = None) -> None:
        """Writes every split (its first `limit` rows, if given) as a manifest folder.

        Layout: {split}/{id}.png, {split}/{id}.wav (16-bit PCM) and {split}.jsonl with one line per row,
        {"id", "image", "sound" (if any), "text" (if any), "label" (the concept name)}, paths relative
        to `folder`.
        """
        # Imported here: only the manifest writer needs image and audio encoders.
        import soundfile
        from PIL import Image

        for split in SPLITS:
            os.makedirs(os.path.join(folder, split), exist_ok=True)
            n = self.split_size(split) if limit is None else min(limit, self.split_size(split))
            with open(os.path.join(folder, f"{split}.jsonl"), "w") as lines:
                for i in range(n):
                    s = self.sample(split, i)
                    row: dict[str, Any] = dict(id=s["id"], image=f"{split}/{s['id']}.png")
                    Image.fromarray(s["image"]).save(os.path.join(folder, row["image"]))
                    if s["waveform"] is not None:
                        row["sound"] = f"{split}/{s['id']}.wav"
                        soundfile.write(
                            os.path.join(folder, row["sound"]),
                            s["waveform"],
                            self.config.sample_rate,
                            subtype="PCM_16",
                        )
                    if s["caption"] is not None:
                        row["text"] = s["caption"]
                    row["label"] = self.concept_names[s["label"]]
                    lines.write(json.dumps(row) + "\n")
