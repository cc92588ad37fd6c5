"""Sound tower: a four-layer 1-D conv net over time, frequencies as channels (optionally pooled into
mel-spaced bands first)."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def mel_bands(freq_bins: int, bands: int, sample_rate: int) -> np.ndarray:
    """[freq_bins, bands] float32: column b averages the bins under a triangle centred on the b-th of
    `bands` mel-spaced frequencies between 0 Hz and sample_rate / 2 (weights summing to 1; a band too
    narrow to cover a bin centre takes its nearest bin)."""
    if bands < 1 or sample_rate <= 0 or freq_bins < 2:
        raise ValueError(f"mel bands need bands >= 1, sample_rate > 0, freq_bins >= 2; got "
                         f"{bands}, {sample_rate}, {freq_bins}")  # fmt: skip
    hz = np.linspace(0.0, sample_rate / 2, freq_bins)
    edges_mel = np.linspace(0.0, _mel(np.asarray(sample_rate / 2)), bands + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (hz[None] - low) / (centre - low)
    falling = (high - hz[None]) / (high - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [bands, freq_bins]
    empty = weights.sum(axis=1) == 0
    weights[empty, np.abs(hz[None] - centre[empty]).argmin(axis=1)] = 1.0
    return (weights / weights.sum(axis=1, keepdims=True)).T.astype(np.float32)


class SoundTower(nn.Module):
    """Spectrograms [B, T, F] -> tower vector [B, tower_dim] (ReLU).

    Each conv runs over time with SAME padding and ReLU; a global max over time makes the output
    independent of T. time_steps and freq_bins are the input shape the tower is built for. bands > 0
    first averages the freq_bins (0 to sample_rate / 2 Hz) into that many mel-spaced bands (mel_bands),
    so that neighbouring bins, which a voice's pitch moves between, share the first conv's weights.
    """

    channels: Sequence[int]
    kernels: Sequence[int]
    strides: Sequence[int]
    tower_dim: int
    time_steps: int
    freq_bins: int
    bands: int = 0
    sample_rate: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, spectrograms: jax.Array) -> jax.Array:
        x = spectrograms.astype(self.dtype)
        if self.bands:
            x = x @ jnp.asarray(mel_bands(self.freq_bins, self.bands, self.sample_rate), self.dtype)
        layers = zip(self.channels, self.kernels, self.strides, strict=True)
        for i, (features, kernel, stride) in enumerate(layers):
            x = nn.Conv(
                features,
                (kernel,),
                strides=(stride,),
                padding="SAME",
                dtype=self.dtype,
                name=f"conv{i + 1}",
            )(x)
            x = nn.relu(x)
        x = jnp.max(x, axis=1)
        return nn.relu(nn.Dense(self.tower_dim, dtype=self.dtype, name="tower")(x))
