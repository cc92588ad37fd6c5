"""TFDS builder of the bundled tri-modal world (data_pipelines.world), built offline into any data_dir.

Configs: "small" (WorldConfig.small(): tests), "default" (WorldConfig(): what the demo trains on, 5,000 test
triplets for the paper's 5 x 1,000 protocol) and "full" (WorldConfig.full(): 42 concepts, 10,000 test
triplets; several GB). Word vectors are trained on the train captions plus the
world's background corpus (never the test captions) and saved beside the data set.

    builder = WorldDataset(data_dir="data", config="small")
    builder.download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines import audio, text
from data_pipelines.builders import features
from data_pipelines.builders.base import AlignedBuilder, Example, SpecConfig
from data_pipelines.builders.skips import Outcome
from data_pipelines.world import World, WorldConfig

# Sentences of background text for word2vec; enough for colour, size and count words to separate.
BACKGROUND_SENTENCES = 20_000


def world_spec(world_config: WorldConfig, word_dim: int = 32) -> features.FeatureSpec:
    """The world's stored shapes: its image size; 64 x 65 spectrograms of 1 s at 8 kHz; its caption length."""
    return features.FeatureSpec(
        image_size=world_config.image_size,
        audio=audio.AudioConfig(
            sample_rate=world_config.sample_rate,
            n_fft=128,
            hop_length=125,
            clip_seconds=world_config.clip_seconds,
            time_steps=int(round(world_config.clip_seconds * world_config.sample_rate / 125)),
        ),
        text=text.TextConfig(max_words=world_config.caption_words, word_dim=word_dim),
    )


@dataclasses.dataclass(eq=False)
class WorldBuilderConfig(SpecConfig):
    """world: what to generate; spec: stored shapes (defaults to world_spec(world))."""

    world: WorldConfig = dataclasses.field(default_factory=WorldConfig)
    background_sentences: int = BACKGROUND_SENTENCES

    @classmethod
    def make(cls, name: str, world: WorldConfig, **kwargs: Any) -> WorldBuilderConfig:
        kwargs.setdefault("spec", world_spec(world))
        return cls(name=name, world=world, **kwargs)


class WorldDataset(AlignedBuilder):
    """The bundled world: train rows are image+sound or image+text; validation/test rows are triplets."""

    DESCRIPTION = (
        "Procedural images, sounds and captions of shared concepts (see data_pipelines.world)."
    )
    BUILDER_CONFIGS = [
        WorldBuilderConfig.make(
            "small", WorldConfig.small(), description="small world for tests and quick demos"
        ),
        WorldBuilderConfig.make("default", WorldConfig(), description="the demo's world"),
        WorldBuilderConfig.make(
            "full", WorldConfig.full(), description="42 concepts, 10,000 tests"
        ),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "default"
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Captions name a second, absent concept in a negated clause; 16 words at most.",
    }

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        del dl_manager  # everything is generated
        config = self.builder_config
        world = World(config.world)
        train_captions = (world.caption("train", i) for i in range(world.split_size("train")))
        captions = [caption for caption in train_captions if caption is not None]
        corpus = captions + list(world.background_corpus(config.background_sentences))
        self._word_vectors = text.train_word_vectors(corpus, self.spec.text)
        features.save_word_vectors(self.data_dir, self._word_vectors)
        features.save_label_names(self.data_dir, world.concept_names, world.fine_class_names)
        splits = [s for s in ("train", "validation", "test") if world.split_size(s) > 0]
        return {split: self._generate_examples(world, split) for split in splits}

    def _generate_examples(self, world: World, split: str) -> Iterator[tuple[str, Example]]:
        size = world.split_size(split)
        if size < PARALLEL_MIN_ROWS or WORKERS < 2:
            _start_worker(world.config, self.spec, self._word_vectors)
            yield from self._keep_valid(split, map(_encode_row, ((split, i) for i in range(size))))
            return
        # Rendering and feature extraction dominate the build: spread them over worker processes
        # (spawned, not forked, since TensorFlow's threads are already running here).
        context = multiprocessing.get_context("spawn")
        with context.Pool(
            WORKERS, _start_worker, (world.config, self.spec, self._word_vectors)
        ) as pool:
            results = pool.imap(_encode_row, ((split, i) for i in range(size)), chunksize=256)
            yield from self._keep_valid(split, results)


# Splits smaller than this are encoded in-process: starting workers costs seconds.
PARALLEL_MIN_ROWS = 4000
WORKERS = min(os.cpu_count() or 1, 8)
_worker: dict[str, Any] = {}


def _start_worker(world_config: WorldConfig, spec: features.FeatureSpec, vectors) -> None:
    _worker["world"] = World(world_config)
    _worker["encoder"] = features.ExampleEncoder(spec, vectors)


def _encode_row(split_index: tuple[str, int]) -> Outcome:
    """What row `index` of `split` became (picklable: a worker process sends it back)."""
    split, index = split_index
    sample = _worker["world"].sample(split, index)
    kind = sample["kind"]
    return Outcome.attempt(
        index,
        _worker["encoder"].encode,
        sample["id"],
        image=sample["image"],
        sound=sample["waveform"] if kind in ("image_sound", "triplet") else None,
        caption=sample["caption"] if kind in ("image_text", "triplet") else None,
        label=sample["label"],
        fine_label=sample["fine_label"],
    )
