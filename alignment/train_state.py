"""The training state carried from step to step."""

from typing import Any

import jax
from flax import struct


@struct.dataclass
class TrainState:
    """step: int32 scalar, batches consumed; params: the network's parameters; opt_state: optax state;
    rng: base PRNG key (each step folds in the step and the device index);
    nonfinite_count: int32 scalar, steps skipped because the loss or gradient was not finite."""

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    nonfinite_count: jax.Array
