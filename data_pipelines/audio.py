"""Waveforms to log-magnitude spectrograms: decode, mono, resample, crop or pad, STFT, log, mean subtraction.

The sound tower reads a spectrogram [time_steps, n_fft // 2 + 1] (time as the conv axis, frequencies as
channels). The STFT is a plain numpy one (Hann window, centred frames) so that the first call is cheap and
every output is finite; librosa is used only to resample and to decode what libsndfile cannot.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import soundfile

SOUND_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
# A clip whose peak stays below this is treated as silence: it carries no sound to align.
SILENCE_PEAK = 1e-4


class SilentAudioError(ValueError):
    """The clip is silent: a spectrogram of it would be meaningless to align."""


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """How a waveform becomes a spectrogram.

    Defaults are the bundled world's (8 kHz, 1 s, 128-point FFT, hop 125 -> 64 frames x 65 bins);
    `paper()` gives the paper's 500 x 257 (16 kHz, 5 s, 512-point FFT, 10 ms hop).
    log: "log1p" takes log(1 + |X|); "log" takes log(|X| + log_eps).
    """

    sample_rate: int = 8000
    n_fft: int = 128
    hop_length: int = 125
    clip_seconds: float = 1.0
    time_steps: int = 64
    log: str = "log1p"
    log_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft < 2 or self.hop_length <= 0 or self.time_steps <= 0:
            raise ValueError(f"invalid audio config: {self}")
        if self.clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be positive, got {self.clip_seconds}")
        if self.log not in ("log1p", "log"):
            raise ValueError(f"log must be 'log1p' or 'log', got {self.log!r}")

    @property
    def freq_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    def check_time_steps(self) -> None:
        """ValueError (one line) when time_steps leaves part of the clip unread, or pads past its end,
        by more than 2 frames and 2%: the two are set together (a clip's frames beyond time_steps would
        be dropped without a word)."""
        frames = self.frames(self.clip_seconds)
        if abs(self.time_steps - frames) > max(2, 0.02 * frames):
            raise ValueError(
                f"config.data.audio.time_steps={self.time_steps} frames cover "
                f"{(self.time_steps - 1) * self.hop_length / self.sample_rate:.2f} s but clips are "
                f"clip_seconds={self.clip_seconds} s: set --config.data.audio.time_steps={frames} "
                "(clip_seconds x sample_rate / hop_length + 1)"
            )

    def frames(self, seconds: float) -> int:
        """The centred STFT frames of a clip of `seconds`: the time_steps that read all of it."""
        return int(round(seconds * self.sample_rate)) // self.hop_length + 1

    @property
    def shape(self) -> tuple[int, int]:
        """The spectrogram shape [time_steps, freq_bins]."""
        return (self.time_steps, self.freq_bins)

    @classmethod
    def paper(cls) -> AudioConfig:
        return cls(sample_rate=16000, n_fft=512, hop_length=160, clip_seconds=5.0, time_steps=500)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Any) -> AudioConfig:
        """Builds from a ConfigDict or mapping (config.data.audio); missing optional keys keep defaults."""
        names = [f.name for f in dataclasses.fields(cls)]
        getter = cfg.get if isinstance(cfg, Mapping) else lambda k, d: getattr(cfg, k, d)
        values = {name: getter(name, None) for name in names}
        return cls(**{k: v for k, v in values.items() if v is not None})


def as_float_waveform(samples: Any) -> np.ndarray:
    """Any 1-D (or [N, channels]) sample array -> mono float64 [N] in [-1, 1].

    Integer PCM is scaled by its type's range; floats louder than full scale (clipping, unnormalized
    sources) are peak-normalized. Raises ValueError for empty, non-numeric or non-finite input.
    """
    array = np.asarray(samples)
    is_integer = np.issubdtype(array.dtype, np.integer)
    if array.dtype == bool or not (is_integer or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"audio samples must be integer or float, got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(f"audio must be [samples] or [samples, channels], got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"audio is empty (shape {array.shape})")
    wave = _scale_integers(array) if is_integer else array.astype(np.float64)
    if not np.all(np.isfinite(wave)):
        raise ValueError("audio contains NaN or Inf samples")
    peak = float(np.max(np.abs(wave)))
    if peak > 1.0:
        wave = wave / peak
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    return wave


def _scale_integers(array: np.ndarray) -> np.ndarray:
    info = np.iinfo(array.dtype)
    if info.min == 0:  # unsigned PCM is offset binary
        middle = (int(info.max) + 1) / 2
        return (array.astype(np.float64) - middle) / middle
    return array.astype(np.float64) / (int(info.max) + 1)


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decodes wav/flac/ogg/mp3 to mono float32 [N] at `sample_rate`. ValueError if unreadable or empty."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"sound file not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"sound file is empty (0 bytes): {path}")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        samples, rate = _decode_with_librosa(path, err)
    wave = as_float_waveform(samples)
    if rate != sample_rate:
        import librosa  # imported lazily: its import and first resample are slow

        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return wave.astype(np.float32)


def _decode_with_librosa(path: str, first_error: Exception) -> tuple[np.ndarray, int]:
    import librosa

    try:
        with warnings.catch_warnings():  # librosa warns on every fallback to audioread
            warnings.simplefilter("ignore")
            wave, rate = librosa.load(path, sr=None, mono=True)
    except Exception as err:  # audioread/soundfile raise many unrelated types for a corrupt file
        raise ValueError(f"cannot decode sound file {path}: {first_error}; {err}") from err
    return np.asarray(wave)[:, None], int(rate)


def crop_or_pad(
    wave: np.ndarray, num_samples: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """[N] -> [num_samples]: a random window when `rng` is given (training), else the centre one.

    Short clips are zero-padded evenly on both sides.
    """
    length = wave.shape[0]
    if length >= num_samples:
        extra = length - num_samples
        start = int(rng.integers(0, extra + 1)) if rng is not None else extra // 2
        return wave[start : start + num_samples]
    before = (num_samples - length) // 2
    return np.pad(wave, (before, num_samples - length - before))


def spectrogram(wave: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """[N] waveform -> float32 [time_steps, freq_bins]: |STFT| (Hann, centred frames), log, minus its mean.

    The scalar mean is subtracted (not a per-frequency one) so a stationary tone, often what tells
    sounds apart, survives. Frames beyond the signal are zero-padded to exactly `time_steps`.
    """
    wave = as_float_waveform(wave)
    half = cfg.n_fft // 2
    needed = (cfg.time_steps - 1) * cfg.hop_length + cfg.n_fft
    padded = np.zeros(max(needed, wave.shape[0] + 2 * half), dtype=np.float64)
    padded[half : half + wave.shape[0]] = wave
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop_length]
    frames = frames[: cfg.time_steps]
    window = np.hanning(cfg.n_fft + 1)[:-1]  # periodic Hann, as librosa uses
    magnitude = np.abs(np.fft.rfft(frames * window, axis=-1))
    log_mag = np.log1p(magnitude) if cfg.log == "log1p" else np.log(magnitude + cfg.log_eps)
    log_mag -= log_mag.mean()
    return log_mag.astype(np.float32)


def waveform_features(
    samples: Any, cfg: AudioConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Samples at cfg.sample_rate -> float32 [time_steps, freq_bins], from a clip_seconds window.

    Raises ValueError for empty, non-finite or silent audio, so nothing meaningless is stored.
    """
    wave = as_float_waveform(samples)
    if float(np.max(np.abs(wave))) < SILENCE_PEAK:
        raise SilentAudioError(f"audio is silent (peak below {SILENCE_PEAK})")
    return spectrogram(crop_or_pad(wave, cfg.clip_samples, rng), cfg)


def file_features(
    path: str | os.PathLike, cfg: AudioConfig, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A sound file -> float32 [time_steps, freq_bins] (see `waveform_features`)."""
    return waveform_features(load_audio(path, cfg.sample_rate), cfg, rng)
