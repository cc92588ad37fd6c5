"""AlexNet convolutional stack, the vision tower built on it, and on-device image normalization.

Layout: NHWC activations, HWIO conv kernels (flax), so a torchvision conv weight [O, I, H, W] maps to
kernel = weight.transpose(2, 3, 1, 0). Parameter names: conv1..conv5, each with "kernel" and "bias" (and
norm1..norm5, each with "scale" and "bias", with conv_norm="group").
"""

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

# torchvision's AlexNet max-pools after conv1, conv2 and conv5 (pool5).
_POOLED_LAYERS = (0, 1, 4)
NORMALIZATIONS = ("symmetric", "imagenet")
# What follows each conv before its ReLU: nothing (AlexNet, and any imported torchvision weights) or
# GroupNorm over groups of up to 8 channels, per image (no batch statistics, so an image's output never
# depends on its batch mates or on how the batch is sharded). For a student tower trained from scratch:
# on the own-data digits fixture its KL to the teacher fell to 0.29 by step 500 with it, 0.48 without.
CONV_NORMS = ("none", "group")
_GROUP_SIZE = 8
# torchvision's ImageNet statistics of [0, 1] RGB pixels: what its pretrained weights were trained on.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: jax.Array, dtype: Any, normalization: str = "symmetric") -> jax.Array:
    """Integer images [B, H, W, 3] in [0, 255] -> floats [B, H, W, 3] of `dtype`.

    normalization: "symmetric" maps x to x / 127.5 - 1, in [-1, 1]; "imagenet" to (x / 255 - mean) / std
    with torchvision's ImageNet mean and std per channel. Float images are taken as already normalized and
    only cast. ValueError for any other normalization.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}"
        )
    if not jnp.issubdtype(images.dtype, jnp.integer):
        return images.astype(dtype)
    if normalization == "symmetric":
        return images.astype(dtype) / 127.5 - 1.0
    # In float32 and cast once: bfloat16 would round the mean and std to about 3 digits first.
    x = images.astype(jnp.float32) / 255.0
    mean, std = jnp.asarray(_IMAGENET_MEAN), jnp.asarray(_IMAGENET_STD)
    return ((x - mean) / std).astype(dtype)


def conv_padding(kernel: int) -> int:
    """Symmetric padding of torchvision's AlexNet: 2 for the 11x11 and 5x5 convs, 1 for the 3x3 convs."""
    return min(kernel // 2, 2)


def _pool_geometry(height: int, width: int) -> tuple[list[tuple[int, int]], int, int]:
    """Window offsets (row-major) and output rows, cols of a 3x3 stride-2 pool on a height x width map."""
    window = min(3, height, width)
    offsets = [(i, j) for i in range(window) for j in range(window)]
    return offsets, (height - window) // 2 + 1, (width - window) // 2 + 1


def _window_shifts(x: jax.Array) -> list[jax.Array]:
    """The pool window's strided shifts of x [B, H, W, C], each [B, rows, cols, C], in window order."""
    offsets, rows, cols = _pool_geometry(x.shape[1], x.shape[2])
    return [
        x[:, i : i + 2 * (rows - 1) + 1 : 2, j : j + 2 * (cols - 1) + 1 : 2] for i, j in offsets
    ]


@jax.custom_vjp
def max_pool(x: jax.Array) -> jax.Array:
    """3x3 stride-2 max-pool without padding (torchvision's MaxPool2d(3, 2)) on [B, H, W, C].

    The window shrinks to the feature map when that is smaller than 3, so tiny CPU images still work.
    Values and gradients equal nn.max_pool's (the gradient goes to the first maximum of each window),
    computed as a max over the window's strided shifts with a hand-written backward pass: XLA's CPU
    backend runs max_pool's select_and_scatter, and autodiff through a chain of maxima, several
    times slower than the few selects below.
    """
    return functools.reduce(jnp.maximum, _window_shifts(x))


def _max_pool_forward(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, tuple[int, ...]]]:
    shifts = _window_shifts(x)
    pooled = functools.reduce(jnp.maximum, shifts)
    # Index of each window's first maximum; int8 suffices for at most 9 window positions.
    first = jnp.full(pooled.shape, len(shifts) - 1, jnp.int8)
    for k in reversed(range(len(shifts) - 1)):
        first = jnp.where(shifts[k] == pooled, jnp.int8(k), first)
    return pooled, (first, x.shape)


def _max_pool_backward(
    residuals: tuple[jax.Array, tuple[int, ...]], grad: jax.Array
) -> tuple[jax.Array]:
    first, shape = residuals
    height, width = shape[1], shape[2]
    offsets, rows, cols = _pool_geometry(height, width)
    zero = jnp.zeros((), grad.dtype)
    grad_x = jnp.zeros(shape, grad.dtype)
    for k, (i, j) in enumerate(offsets):
        # Scatter window position k's share back with stride 2: interior padding of 1.
        spread = (
            (0, 0, 0),
            (i, height - i - 2 * (rows - 1) - 1, 1),
            (j, width - j - 2 * (cols - 1) - 1, 1),
            (0, 0, 0),
        )
        grad_x = grad_x + jax.lax.pad(jnp.where(first == k, grad, zero), zero, spread)
    return (grad_x,)


max_pool.defvjp(_max_pool_forward, _max_pool_backward)


def global_max_mean(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, 2C]: global max pooling concatenated with global mean pooling."""
    return jnp.concatenate([jnp.max(x, axis=(1, 2)), jnp.mean(x, axis=(1, 2))], axis=-1)


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """torch's AdaptiveAvgPool2d((size, size)) on [B, H, W, C]: bin i spans [floor(iH/s), ceil((i+1)H/s))."""

    def bins(length: int) -> list[tuple[int, int]]:
        return [(i * length // size, -(-(i + 1) * length // size)) for i in range(size)]

    rows = [jnp.mean(x[:, a:b], axis=1) for a, b in bins(x.shape[1])]
    x = jnp.stack(rows, axis=1)
    cols = [jnp.mean(x[:, :, a:b], axis=2) for a, b in bins(x.shape[2])]
    return jnp.stack(cols, axis=2)


class AlexNetFeatures(nn.Module):
    """AlexNet conv1-conv5 with ReLU and max-pools after conv1, conv2 and conv5: [B,H,W,3] -> pool5 [B,h,w,C5].

    With channels (64, 192, 384, 256, 256), kernels (11, 5, 3, 3, 3) and strides (4, 1, 1, 1, 1) this is
    torchvision's `alexnet().features` (features.{0,3,6,8,10} -> conv{1..5}).
    """

    channels: Sequence[int]
    kernels: Sequence[int]
    strides: Sequence[int]
    dtype: Any = jnp.float32
    normalization: str = "symmetric"  # of integer inputs; see normalize_images
    conv_norm: str = "none"  # see CONV_NORMS; "group" adds norm1..norm5 (scale and bias)

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        if self.conv_norm not in CONV_NORMS:
            raise ValueError(f"unknown conv_norm {self.conv_norm!r}; expected one of {CONV_NORMS}")
        x = normalize_images(images, self.dtype, self.normalization)
        layers = zip(self.channels, self.kernels, self.strides, strict=True)
        for i, (features, kernel, stride) in enumerate(layers):
            pad = conv_padding(kernel)
            x = nn.Conv(
                features,
                (kernel, kernel),
                strides=(stride, stride),
                padding=((pad, pad), (pad, pad)),
                dtype=self.dtype,
                name=f"conv{i + 1}",
            )(x)
            if self.conv_norm == "group":
                group_size = math.gcd(features, _GROUP_SIZE)
                x = nn.GroupNorm(
                    num_groups=None, group_size=group_size, dtype=self.dtype, name=f"norm{i + 1}"
                )(x)
            x = nn.relu(x)
            if i in _POOLED_LAYERS:
                x = max_pool(x)
        return x


class VisionTower(nn.Module):
    """Images [B, H, W, 3] (uint8 or float) -> tower vector [B, tower_dim] (ReLU).

    pool: "flatten" (AlexNet pool5 flattened, H-W-C order) or "maxmean" (global max ++ mean pooling).
    image_size is the input side the tower is built for (used to create example inputs).
    normalization: how uint8 inputs become floats ("symmetric" or "imagenet", see normalize_images).
    conv_norm: "none" or "group" (see CONV_NORMS).
    fresh_channels: () or the channels of a second conv stack ("fresh", same kernels and strides,
      GroupNorm) beside "features". Each stack's pooled vector is layer-normalized ("features_norm",
      "fresh_norm") and the two are concatenated before the tower layer. "features" is the stack a
      teacher initializes; "fresh" always starts random, so it sees what the teacher's labels taught it
      to ignore (the colours a caption names, when the labels are shapes).
    features_scale: the initial scale of "features_norm" (with fresh_channels). Below 1 the teacher's
      features start quiet: the towers first align on what the fresh stack and the captions share, then
      on the classes as the scale is learned.
    """

    channels: Sequence[int]
    kernels: Sequence[int]
    strides: Sequence[int]
    pool: str
    tower_dim: int
    image_size: int
    dtype: Any = jnp.float32
    normalization: str = "symmetric"
    conv_norm: str = "none"
    fresh_channels: Sequence[int] = ()
    features_scale: float = 1.0

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        stack = functools.partial(
            AlexNetFeatures,
            kernels=self.kernels,
            strides=self.strides,
            dtype=self.dtype,
            normalization=self.normalization,
        )
        x = stack(self.channels, conv_norm=self.conv_norm, name="features")(images)
        x = pool_features(x, self.pool)
        if self.fresh_channels:
            fresh = stack(self.fresh_channels, conv_norm="group", name="fresh")(images)
            scale = nn.initializers.constant(self.features_scale)
            features_norm = nn.LayerNorm(dtype=self.dtype, scale_init=scale, name="features_norm")
            fresh_norm = nn.LayerNorm(dtype=self.dtype, name="fresh_norm")
            x = jnp.concatenate(
                [features_norm(x), fresh_norm(pool_features(fresh, self.pool))], axis=-1
            )
        return nn.relu(nn.Dense(self.tower_dim, dtype=self.dtype, name="tower")(x))


def pool_features(x: jax.Array, pool: str) -> jax.Array:
    """pool5 maps [B, h, w, C] -> [B, h*w*C] ("flatten") or [B, 2C] ("maxmean")."""
    if pool == "flatten":
        return x.reshape(x.shape[0], -1)
    if pool == "maxmean":
        return global_max_mean(x)
    raise ValueError(f"unknown vision pool {pool!r}; expected 'flatten' or 'maxmean'")
