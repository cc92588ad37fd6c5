"""Public sets read from the folders they are distributed in, as plain records with a skip report.

Sound classification (ClassificationSet: clips with path, fold, target, category; class names by target):
  esc50, urbansound8k                    (sound_classes.py)
Caption retrieval (CaptionSet: items, captions, caption_item = the item each caption describes):
  clotho, audiocaps (sounds)             (audio_captions.py)
  coco, flickr30k (images, Karpathy)     (image_captions.py)
Also: class names to prompts (prompts.py) and long clips to model-sized windows (windows.py). Loaders
only list files; decoding stays in data_pipelines.audio and data_pipelines.vision.

    dataset = load("esc50", "/data/ESC-50-master")
    print(len(dataset.clips), dataset.skipped.summary())
"""

from __future__ import annotations

import os
from collections.abc import Callable

from data_pipelines.public_sets.audio_captions import load_audiocaps, load_clotho
from data_pipelines.public_sets.common import CaptionSet, ClassificationSet, Clip, Skipped
from data_pipelines.public_sets.image_captions import load_coco_karpathy, load_flickr30k_karpathy
from data_pipelines.public_sets.sound_classes import load_esc50, load_urbansound8k

LOADERS: dict[str, Callable[[str | os.PathLike], ClassificationSet | CaptionSet]] = {
    "esc50": load_esc50,
    "urbansound8k": load_urbansound8k,
    "clotho": load_clotho,
    "audiocaps": load_audiocaps,
    "coco": load_coco_karpathy,
    "flickr30k": load_flickr30k_karpathy,
}


def load(name: str, folder: str | os.PathLike) -> ClassificationSet | CaptionSet:
    """The public set `name` (a key of LOADERS) read from `folder`, with its default (test) split."""
    if name not in LOADERS:
        raise ValueError(f"unknown public set {name!r}; known: {sorted(LOADERS)}")
    return LOADERS[name](folder)


__all__ = [
    "LOADERS",
    "CaptionSet",
    "ClassificationSet",
    "Clip",
    "Skipped",
    "load",
    "load_audiocaps",
    "load_clotho",
    "load_coco_karpathy",
    "load_esc50",
    "load_flickr30k_karpathy",
    "load_urbansound8k",
]
