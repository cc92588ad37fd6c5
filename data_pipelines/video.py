"""Frames and the audio around them from a video file, through the ffmpeg command line.

Each of N frames, evenly spaced in time, is paired with the clip_seconds of sound centred on it: one
image+sound pair per frame, the natural co-occurrence the paper trains on.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import numpy as np

from data_pipelines import audio, vision

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg")


@dataclasses.dataclass(frozen=True)
class FramePair:
    """One frame and the sound around it. image: uint8 [H, W, 3] (decoded size); waveform: float32 [N]."""

    time_seconds: float
    image: np.ndarray
    waveform: np.ndarray


def ffmpeg_binary() -> str:
    """The ffmpeg executable; RuntimeError with install instructions when it is missing."""
    found = shutil.which("ffmpeg")
    if found is None:
        raise RuntimeError(
            "ffmpeg was not found on PATH; it is needed to read video files "
            "(install it: apt-get install ffmpeg, or brew install ffmpeg)"
        )
    return found


def _run(args: list[str], path: str) -> bytes:
    result = subprocess.run(args, capture_output=True, check=False)
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ValueError(
            f"ffmpeg cannot read {path}: {message[-1] if message else 'unknown error'}"
        )
    return result.stdout


def read_audio_track(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The whole audio track as mono float32 [N] at sample_rate. ValueError if there is none."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"video file not found: {path}")
    try:
        raw = _run(
            [ffmpeg_binary(), "-nostdin", "-v", "error", "-i", path, "-vn", "-ac", "1",
             "-ar", str(sample_rate), "-f", "f32le", "-"],
            path,
        )  # fmt: skip
    except ValueError as err:
        if "does not contain any stream" in str(err):  # ffmpeg's words for "no audio stream"
            raise ValueError(f"video has no audio track: {path}") from err
        raise
    wave = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if wave.size == 0:
        raise ValueError(f"video has no audio track: {path}")
    return wave


def read_frame(path: str | os.PathLike, time_seconds: float) -> np.ndarray:
    """The frame shown at time_seconds as uint8 [H, W, 3]. ValueError if none can be decoded."""
    path = os.fspath(path)
    png = _run(
        [ffmpeg_binary(), "-nostdin", "-v", "error", "-ss", f"{time_seconds:.3f}", "-i", path,
         "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"],
        path,
    )  # fmt: skip
    if not png:
        raise ValueError(f"no video frame at {time_seconds:.3f} s in {path}")
    return vision.decode_image(png)


def frame_times(duration_seconds: float, num_frames: int) -> list[float]:
    """num_frames times at the centres of equal slices of the video."""
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    step = duration_seconds / num_frames
    return [(k + 0.5) * step for k in range(num_frames)]


def sample_pairs(
    path: str | os.PathLike, num_frames: int, audio_cfg: audio.AudioConfig
) -> list[FramePair]:
    """num_frames (frame, surrounding clip_seconds of audio) pairs from one video.

    The audio window is centred on the frame and zero-padded at the ends of the track.
    """
    track = read_audio_track(path, audio_cfg.sample_rate)
    duration = track.size / audio_cfg.sample_rate
    window = audio_cfg.clip_samples
    pairs = []
    for time in frame_times(duration, num_frames):
        centre = int(round(time * audio_cfg.sample_rate))
        start = centre - window // 2
        padded = np.zeros(window, dtype=np.float32)
        lo, hi = max(start, 0), min(start + window, track.size)
        padded[lo - start : hi - start] = track[lo:hi]
        pairs.append(FramePair(time_seconds=time, image=read_frame(path, time), waveform=padded))
    return pairs
