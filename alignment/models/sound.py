"""Sound tower: a four-layer 1-D conv net over time, frequencies as channels."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn


class SoundTower(nn.Module):
    """Spectrograms [B, T, F] -> tower vector [B, tower_dim] (ReLU).

    Each conv runs over time with SAME padding and ReLU; a global max over time makes the output
    independent of T. time_steps and freq_bins are the input shape the tower is built for.
    """

    channels: Sequence[int]
    kernels: Sequence[int]
    strides: Sequence[int]
    tower_dim: int
    time_steps: int
    freq_bins: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, spectrograms: jax.Array) -> jax.Array:
        x = spectrograms.astype(self.dtype)
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
