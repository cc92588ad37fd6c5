"""Clips of any length to the windows the sound tower was trained on, and window embeddings to clips.

The sound tower sees clip_samples at a time (AudioConfig.clip_samples). A public set's clip is cut into
windows of that length, every window is embedded, and the window embeddings of a clip are pooled:
- shorter than a window: one window, zero-padded evenly on both sides, as training pads short clips
  (audio.crop_or_pad);
- longer: windows every `hop` samples from the start (hop = clip_samples by default: no overlap), and
  one last window ending exactly at the clip's end, overlapping its predecessor instead of being padded.
  With the default hop that is ceil(N / clip_samples) windows, every one full of the clip: a padded tail
  window would be mostly zeros, and its embedding would pull the pooled one towards "silence".
file_windows also leaves out windows that are silent (audio.SILENCE_PEAK), as training never stores a
silent clip: ESC-50 pads many clips to 5 s with digital silence.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from data_pipelines.audio import (
    AudioConfig,
    SilentAudioError,
    as_float_waveform,
    crop_or_pad,
    load_audio,
    waveform_features,
)

POOLING = ("mean", "max")


def to_mono(samples: Any) -> np.ndarray:
    """[N] or [N, channels] samples -> float32 [N], channels averaged (audio.as_float_waveform)."""
    return as_float_waveform(samples).astype(np.float32)


def window_starts(length: int, clip_samples: int, hop: int | None = None) -> list[int]:
    """Start samples of the windows of a clip of `length` samples (module docstring); [0] if short."""
    hop = clip_samples if hop is None else hop
    if clip_samples < 1 or hop < 1:
        raise ValueError(f"clip_samples and hop must be positive, got {clip_samples}, {hop}")
    if length <= clip_samples:
        return [0]
    starts = list(range(0, length - clip_samples + 1, hop))
    if starts[-1] + clip_samples < length:
        starts.append(length - clip_samples)
    return starts


def clip_windows(samples: Any, clip_samples: int, hop: int | None = None) -> np.ndarray:
    """A clip (mono [N], or [N, channels] downmixed) -> float32 [W, clip_samples] windows."""
    wave = to_mono(samples)
    if wave.shape[0] <= clip_samples:
        return crop_or_pad(wave, clip_samples)[None]
    starts = window_starts(wave.shape[0], clip_samples, hop)
    return np.stack([wave[start : start + clip_samples] for start in starts])


def file_windows(path: str | os.PathLike, cfg: AudioConfig, hop: int | None = None) -> np.ndarray:
    """A sound file -> float32 [W, time_steps, freq_bins]: the spectrograms of its non-silent windows.

    Decoding and resampling are audio.load_audio's; each window's spectrogram is the one training
    stores (audio.waveform_features). SilentAudioError when every window is silent.
    """
    wave = load_audio(path, cfg.sample_rate)
    features = []
    for window in clip_windows(wave, cfg.clip_samples, hop):
        try:
            features.append(waveform_features(window, cfg))
        except SilentAudioError:
            continue  # digital silence (padding) carries nothing to embed
    if not features:
        raise SilentAudioError(f"{os.fspath(path)}: every window is silent")
    return np.stack(features)


def pool_windows(embeddings: np.ndarray, window_counts: Any, pooling: str = "mean") -> np.ndarray:
    """Window embeddings -> clip embeddings.

    Args:
      embeddings: [sum(window_counts), D], the windows of clip 0, then those of clip 1, ...
      window_counts: int [N], windows per clip, each >= 1.
      pooling: "mean" (the mean of a clip's window embeddings) or "max" (element-wise maximum).

    Returns:
      [N, D] in the embeddings' dtype.
    """
    if pooling not in POOLING:
        raise ValueError(f"pooling must be one of {POOLING}, got {pooling!r}")
    embeddings = np.asarray(embeddings)
    counts = np.asarray(window_counts, dtype=np.int64)
    if embeddings.ndim != 2 or counts.ndim != 1 or counts.size == 0:
        raise ValueError(
            f"expected [W, D] embeddings and [N] counts, got {embeddings.shape}, {counts.shape}"
        )
    if counts.min() < 1 or counts.sum() != embeddings.shape[0]:
        raise ValueError(
            f"window counts must be >= 1 and sum to {embeddings.shape[0]}, got sum {counts.sum()}"
        )
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if pooling == "max":
        return np.maximum.reduceat(embeddings, offsets, axis=0)
    sums = np.add.reduceat(embeddings.astype(np.float64), offsets, axis=0)
    return (sums / counts[:, None]).astype(embeddings.dtype)
