"""Sounds of the bundled world: one event per object, in background noise.

An event is the concept's note: a harmonic (or bell-like) tone with the concept's envelope, tremolo,
pitch glide and noise band. The instance shows in the sound as it does in the image: the pitch falls
with size (0.4 octave either side of the concept's pitch), the count is the number of events (separated
by silences of at least MIN_GAP seconds), and the colour sets the frequency of a narrow shimmer band
(2.0-3.4 kHz, 280 Hz apart: four to five bins of a 128-point FFT at 8 kHz) that rings with each event.
Tones, noise bands and hum stay below 1.9 kHz, so the colour band is the colour's alone.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.world.concepts import COLOURS, Concept, Instance

MIN_GAP = 0.07
# Partials stop below the colour band, so that band carries the colour alone.
MAX_PARTIAL_HZ = 1900.0
SHIMMER_LEVEL = 0.4
# Octaves the pitch moves from the smallest to the biggest instance.
SIZE_OCTAVES = 0.8


def _partials(profile: str) -> tuple[np.ndarray, np.ndarray]:
    """(frequency ratios, amplitudes) of the concept's harmonic profile."""
    n = np.arange(1, 9, dtype=np.float64)
    if profile == "pure":
        return n[:3], np.array([1.0, 0.15, 0.05])
    if profile == "saw":
        return n, 1.0 / n
    if profile == "square":
        return n, np.where(n % 2 == 1, 1.0 / n, 0.0)
    if profile == "formant":
        return n, np.exp(-0.5 * (n - 3.0) ** 2)
    if profile == "hollow":
        return n[:6], np.array([0.4, 1.0, 0.2, 0.6, 0.1, 0.3])
    if profile == "bell":
        return np.array([1.0, 2.76, 5.40, 8.93]), np.array([1.0, 0.6, 0.4, 0.25])
    raise ValueError(f"unknown harmonic profile {profile!r}")


def _envelope(kind: str, t: np.ndarray) -> np.ndarray:
    """Amplitude over one event, t in [0, 1)."""
    if kind == "percussive":
        return np.minimum(t / 0.03, 1.0) * np.exp(-4.0 * t)
    if kind == "sustained":
        return np.minimum(np.minimum(t / 0.08, 1.0), (1.0 - t) / 0.12)
    if kind == "swell":
        return np.sin(np.pi * t) ** 1.5
    if kind == "reverse":
        return np.minimum(np.exp(-3.0 * (1.0 - t)), (1.0 - t) / 0.06)
    raise ValueError(f"unknown envelope {kind!r}")


def _band_noise(
    rng: np.random.Generator, n: int, sample_rate: int, centre: float, width: float
) -> np.ndarray:
    """White noise of length n through a Gaussian band-pass, unit peak."""
    spec = np.fft.rfft(rng.random(n, dtype=np.float32) - 0.5)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    noise = np.fft.irfft(spec * np.exp(-0.5 * ((freqs - centre) / width) ** 2), n)
    return (noise / (np.abs(noise).max() + 1e-9)).astype(np.float32)


def pitch(concept: Concept, size_value: float) -> float:
    """The fundamental (Hz) of a concept's note at a given size_value in (0, 1)."""
    return concept.pitch * 2.0 ** (SIZE_OCTAVES * (0.5 - size_value))


def _event(rng: np.random.Generator, instance: Instance, sample_rate: int) -> np.ndarray:
    """One note of the instance, peak 1 for the tone: float32 [round(duration * sample_rate)]."""
    concept = instance.concept
    n = int(round(concept.duration * sample_rate))
    # float32 throughout: sin is an order of magnitude faster, and phases stay within 0.01 rad.
    t = np.arange(n, dtype=np.float32) / np.float32(sample_rate)
    f0 = pitch(concept, instance.size_value) * rng.uniform(0.98, 1.02)
    g = concept.glide / concept.duration
    # Phase of a tone whose frequency moves exponentially by `glide` octaves over the event.
    phase = 2 * np.pi * f0 * (np.exp2(g * t) - 1.0) / (g * np.log(2.0)) if g else 2 * np.pi * f0 * t
    ratios, amps = _partials(concept.harmonics)
    keep = ratios * f0 * 2.0 ** max(concept.glide, 0.0) < MAX_PARTIAL_HZ
    ratios, amps = ratios[keep].astype(np.float32), amps[keep].astype(np.float32)
    offsets = rng.uniform(0, 2 * np.pi, size=(len(ratios), 1)).astype(np.float32)
    tone = amps @ np.sin(ratios[:, None] * phase.astype(np.float32)[None] + offsets)
    tone /= np.abs(tone).max() + 1e-9
    if concept.noise_level:
        noise = _band_noise(rng, n, sample_rate, concept.noise_centre, concept.noise_width)
        tone = tone + concept.noise_level * noise
    shimmer_hz = COLOURS[instance.colour][2] + rng.uniform(-15, 15) + np.array([-45.0, 0.0, 45.0])
    shimmer_w = (2 * np.pi * shimmer_hz[:, None]).astype(np.float32)
    shimmer_offsets = rng.uniform(0, 2 * np.pi, (3, 1)).astype(np.float32)
    tone = tone + SHIMMER_LEVEL / 3 * np.sin(shimmer_w * t + shimmer_offsets).sum(0)
    env = _envelope(concept.envelope, t / concept.duration)
    if concept.tremolo:
        env = env * (1.0 - 0.35 * (1 + np.sin(2 * np.pi * concept.tremolo * t)) / 2)
    return tone * env


def render_sound(
    rng: np.random.Generator, instance: Instance, sample_rate: int, clip_seconds: float
) -> np.ndarray:
    """One clip of `instance`: mono float32 [round(clip_seconds * sample_rate)] in [-1, 1]."""
    n = int(round(clip_seconds * sample_rate))
    event = _event(rng, instance, sample_rate)
    count, dur = instance.count, instance.concept.duration
    gaps = rng.uniform(MIN_GAP, MIN_GAP + 0.05, size=count - 1)
    slack = max(clip_seconds - count * dur - gaps.sum(), 0.0)
    onsets = rng.uniform(0, slack) + np.concatenate([[0.0], np.cumsum(gaps + dur)])
    clip = np.zeros(n, np.float32)
    for onset, gain in zip(onsets, rng.uniform(0.75, 1.0, size=count), strict=True):
        i = int(onset * sample_rate)
        m = min(len(event), n - i)
        clip[i : i + m] += np.float32(gain) * event[:m]
    # Background: brown-ish noise and, sometimes, a faint unrelated hum.
    # Background: noise tilted towards low frequencies and, sometimes, a faint unrelated hum.
    white = rng.random(n + 1, dtype=np.float32) - 0.5
    clip += np.float32(rng.uniform(0.02, 0.1)) * (white[1:] + 0.9 * white[:-1])
    if rng.random() < 0.5:
        hum = np.float32(2 * np.pi * rng.uniform(60.0, 1800.0) / sample_rate)
        clip += np.float32(rng.uniform(0.01, 0.05)) * np.sin(hum * np.arange(n, dtype=np.float32))
    clip *= np.float32(rng.uniform(0.3, 0.95) / (np.abs(clip).max() + 1e-9))
    return np.clip(clip, -1.0, 1.0)
