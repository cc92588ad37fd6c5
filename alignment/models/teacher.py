"""The teacher: an AlexNet-style ImageNet-like classifier whose softmax the students learn to match.

Parameter layout (NHWC activations, HWIO kernels, Dense kernels [in, out]), with torchvision's
`alexnet()` state_dict names:
    features/conv1..conv5  <- features.{0,3,6,8,10}  (kernel = weight.transpose(2, 3, 1, 0))
    fc6                    <- classifier.1  (kernel = weight.T, rows permuted from C-H-W to H-W-C order:
                              weight.reshape(out, C, 6, 6).transpose(2, 3, 1, 0).reshape(-1, out))
    fc7                    <- classifier.4  (kernel = weight.T)
    fc8                    <- classifier.6  (kernel = weight.T)
With pool="flatten", pool5 is average-pooled to 6x6 first (torchvision's AdaptiveAvgPool2d((6, 6))).
An imported torchvision AlexNet also needs torchvision's preprocessing: normalization="imagenet" and
image_size=224, so that larger stored frames (e.g. 227x227) are centre-cropped as CenterCrop(224) would.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from alignment.models.blocks import from_block
from alignment.models.vision import AlexNetFeatures, adaptive_avg_pool, pool_features

# torchvision's AlexNet average-pools pool5 to this side before flattening.
_FLATTEN_SIDE = 6


def center_crop(images: jax.Array, size: int) -> jax.Array:
    """[B, H, W, C] -> [B, min(H, size), min(W, size), C]: the central size x size window.

    A side longer than size starts at round((length - size) / 2), torchvision's CenterCrop offset (Python's
    round, as torchvision uses); a side not longer than size is kept whole.
    """

    def window(length: int) -> slice:
        start = round(max(length - size, 0) / 2)
        return slice(start, start + min(length, size))

    return images[:, window(images.shape[1]), window(images.shape[2])]


class Teacher(nn.Module):
    """Images [B, H, W, 3] (uint8 or float) -> class logits [B, num_classes] float32.

    Images larger than image_size are centre-cropped to it first (see center_crop); smaller ones are used
    as given. normalization: how uint8 pixels become floats ("symmetric" or "imagenet", see
    normalize_images). Classifier: [dropout] fc6 ReLU [dropout] fc7 ReLU fc8, as torchvision's; dropout
    only when train=True (needs a "dropout" rng).
    """

    channels: Sequence[int]
    kernels: Sequence[int]
    strides: Sequence[int]
    pool: str
    hidden: Sequence[int]
    num_classes: int
    image_size: int
    dropout: float = 0.0
    dtype: Any = jnp.float32
    normalization: str = "symmetric"

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        x = AlexNetFeatures(
            self.channels,
            self.kernels,
            self.strides,
            self.dtype,
            normalization=self.normalization,
            name="features",
        )(center_crop(images, self.image_size))
        if self.pool == "flatten":
            x = adaptive_avg_pool(x, _FLATTEN_SIDE)
        x = pool_features(x, self.pool)
        for i, width in enumerate(self.hidden):
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
            x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"fc{i + 6}")(x))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name=f"fc{len(self.hidden) + 6}")(x)
        return logits.astype(jnp.float32)

    def example_inputs(self, batch_size: int = 1) -> jax.Array:
        """Zero uint8 images of the size the teacher is built for."""
        return jnp.zeros((batch_size, self.image_size, self.image_size, 3), jnp.uint8)


def create_teacher(cfg: Any) -> Teacher:
    """Teacher from config.teacher: the keys that name Teacher's fields (its training knobs are not the
    module's)."""
    return from_block(Teacher, cfg)
