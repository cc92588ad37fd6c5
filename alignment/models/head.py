"""The layers shared by every modality: fc6, fc7, the class logits and, optionally, the word head."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn


class SharedHead(nn.Module):
    """Tower vectors [B, tower_dim] -> {"fc6": [B, fc6], "fc7": [B, fc7], "logits": [B, num_classes]}.

    fc6 and fc7 are post-ReLU; logits are unnormalized (softmax gives the student's class distribution).
    word_dim > 0 adds "words": [B, word_dim], a linear map of fc7 into the space of the caption word
    vectors, which losses.words_ranking trains to predict a caption's words from any modality.
    """

    fc_dims: Sequence[int]
    num_classes: int
    dtype: Any = jnp.float32
    word_dim: int = 0

    @nn.compact
    def __call__(self, tower: jax.Array) -> dict[str, jax.Array]:
        fc6_dim, fc7_dim = self.fc_dims
        fc6 = nn.relu(nn.Dense(fc6_dim, dtype=self.dtype, name="fc6")(tower))
        fc7 = nn.relu(nn.Dense(fc7_dim, dtype=self.dtype, name="fc7")(fc6))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="logits")(fc7)
        reps = {"fc6": fc6, "fc7": fc7, "logits": logits}
        if self.word_dim:
            reps["words"] = nn.Dense(self.word_dim, dtype=self.dtype, name="words")(fc7)
        return reps
