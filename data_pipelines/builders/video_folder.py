"""TFDS builder of a folder of video files: every video gives frames_per_video image+sound pairs.

The folder is config.folder, or the manual_dir of the download config. Labels (optional) are the names of
the first-level subfolders (folder/<label>/clip.mp4). Whole videos go to train or test (never both), chosen
by a stable hash of the relative path: test_fraction of them to test (the paper held out 15%).

    config = VideoFolderConfig(name="myvideos", folder="/videos", spec=FeatureSpec(...))
    VideoFolderDataset(data_dir="data", config=config).download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines import video
from data_pipelines.builders import features
from data_pipelines.builders.base import AlignedBuilder, SpecConfig
from data_pipelines.builders.skips import Outcome, RowError


@dataclasses.dataclass(eq=False)
class VideoFolderConfig(SpecConfig):
    folder: str = ""
    frames_per_video: int = 4
    test_fraction: float = 0.15
    labels_from_subfolders: bool = True


def list_videos(folder: str) -> list[str]:
    """Video files under folder (recursive), as sorted paths relative to it."""
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(video.VIDEO_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


def is_test_video(relative_path: str, test_fraction: float) -> bool:
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


class VideoFolderDataset(AlignedBuilder):
    """Frames and the sound around them, from the user's videos."""

    DESCRIPTION = "Frame + surrounding-audio pairs sampled from a folder of videos (ffmpeg)."

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        config = self.builder_config
        folder = config.folder or str(dl_manager.manual_dir)
        if not folder or not os.path.isdir(folder):
            raise FileNotFoundError(
                f"video folder not found: {folder!r} (set config.folder or manual_dir)"
            )
        video.ffmpeg_binary()  # fail before any work when ffmpeg is missing
        videos = list_videos(folder)
        if not videos:
            raise FileNotFoundError(
                f"no video files ({', '.join(video.VIDEO_SUFFIXES)}) under {folder}"
            )
        names = {_label_of(v) for v in videos} if config.labels_from_subfolders else set()
        labels = sorted(name for name in names if name is not None)
        self._label_ids = {name: i for i, name in enumerate(labels)}
        features.save_label_names(self.data_dir, labels, [])
        by_split: dict[str, list[str]] = {"train": [], "test": []}
        for v in videos:
            by_split["test" if is_test_video(v, config.test_fraction) else "train"].append(v)
        return {s: self._generate_examples(folder, s, vs) for s, vs in by_split.items() if vs}

    def _generate_examples(self, folder: str, split: str, videos: list[str]) -> Any:
        config = self.builder_config
        encode_row = VideoRows(
            features.ExampleEncoder(self.spec, None),
            folder,
            self._label_ids,
            config.frames_per_video,
        )
        return self._encode_split(split, videos, encode_row)


def _label_of(relative: str) -> str | None:
    parts = relative.replace(os.sep, "/").split("/")
    return parts[0] if len(parts) > 1 else None


@dataclasses.dataclass(frozen=True)
class VideoRows:
    """Encodes one video (its path relative to folder) into frames_per_video frame+sound pairs, at
    positions position * frames_per_video + k: by video, then by time."""

    encoder: features.ExampleEncoder
    folder: str
    label_ids: dict[str, int]
    frames_per_video: int

    def __call__(self, position: int, relative: str) -> Iterator[Outcome]:
        path = os.path.join(self.folder, relative)
        first = position * self.frames_per_video
        label = self.label_ids.get(_label_of(relative) or "", -1)
        try:
            pairs = video.sample_pairs(path, self.frames_per_video, self.encoder.spec.audio)
        except ValueError as err:
            yield Outcome(first, error=RowError("unreadable_sound", path, str(err)))
            return
        for k, pair in enumerate(pairs):
            yield Outcome.attempt(
                first + k,
                self.encoder.encode,
                f"{relative}#{k}",
                image=pair.image,
                sound=pair.waveform,
                label=label,
            )
