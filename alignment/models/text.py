"""Text tower: a four-layer masked 1-D conv net over word vectors."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn


def mean_words(words: jax.Array, mask: jax.Array) -> jax.Array:
    """Caption word vectors [N, L, D] with mask [N, L] -> their mean over the kept words [N, D] float32
    (zero for a caption with no word; padded positions may hold anything, even inf or NaN)."""
    valid = mask.astype(bool)[..., None]
    total = jnp.sum(jnp.where(valid, words.astype(jnp.float32), 0), axis=1)
    return total / jnp.maximum(jnp.sum(valid, axis=1), 1).astype(jnp.float32)


class TextTower(nn.Module):
    """Word vectors [B, L, D] with mask [B, L] (True = word) -> tower vector [B, tower_dim] (ReLU).

    Padded positions are zeroed before every conv (SAME padding, stride 1) and left out of the final
    max pooling, so neither the amount of padding nor what it holds changes the output.
    max_words and word_dim are the input shape the tower is built for.
    bag: also feed the tower layer the mean of the sentence's word vectors (layer-normalized, beside the
      layer-normalized conv features), a bag-of-words path that a new combination of known words reaches
      as directly as the ones seen in training.
    """

    channels: Sequence[int]
    kernels: Sequence[int]
    tower_dim: int
    max_words: int
    word_dim: int
    dtype: Any = jnp.float32
    bag: bool = False

    @nn.compact
    def __call__(self, words: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        if mask is None:
            mask = jnp.ones(words.shape[:2], bool)
        valid = mask.astype(bool)[..., None]
        # jnp.where rather than a multiply: padding may hold anything, even inf or NaN.
        x = words.astype(self.dtype)
        for i, (features, kernel) in enumerate(zip(self.channels, self.kernels, strict=True)):
            x = jnp.where(valid, x, 0)
            x = nn.Conv(features, (kernel,), padding="SAME", dtype=self.dtype, name=f"conv{i + 1}")(
                x
            )
            x = nn.relu(x)
        # Activations are >= 0 after ReLU, so zeros at padded positions never win the max, and an
        # empty sentence pools to zeros instead of -inf.
        x = jnp.max(jnp.where(valid, x, 0), axis=1)
        if self.bag:
            mean = mean_words(words, mask).astype(self.dtype)
            x = jnp.concatenate(
                [
                    nn.LayerNorm(dtype=self.dtype, name="conv_norm")(x),
                    nn.LayerNorm(dtype=self.dtype, name="bag_norm")(mean),
                ],
                axis=-1,
            )
        return nn.relu(nn.Dense(self.tower_dim, dtype=self.dtype, name="tower")(x))
