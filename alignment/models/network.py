"""The tri-modal network: one tower per modality feeding one shared head."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from alignment.models.head import SharedHead
from alignment.models.sound import SoundTower
from alignment.models.text import TextTower
from alignment.models.vision import VisionTower

MODALITIES = ("image", "sound", "text")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TriModalNet(nn.Module):
    """Images, sounds or sentences -> {"tower", "fc6", "fc7", "logits"} (and "words" with the head's
    word_dim), each [B, dim] float32.

    Parameters: {"vision": ..., "sound": ..., "text": ..., "head": {"fc6", "fc7", "logits"}}; the head's
    weights are the same for every modality. Build every tower's parameters at once with `init_params`.
    """

    vision: VisionTower
    sound: SoundTower
    text: TextTower
    head: SharedHead

    def __call__(
        self, x: jax.Array, modality: str, mask: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """x: image [B,H,W,3] | sound [B,T,F] | text [B,L,D] with mask [B,L] (None = all words)."""
        if modality == "image":
            tower = self.vision(x)
        elif modality == "sound":
            tower = self.sound(x)
        elif modality == "text":
            tower = self.text(x, mask)
        else:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        reps = {"tower": tower, **self.head(tower)}
        return {name: rep.astype(jnp.float32) for name, rep in reps.items()}

    def all_modalities(
        self,
        image: jax.Array,
        sound: jax.Array,
        text: jax.Array,
        text_mask: jax.Array | None = None,
    ) -> dict[str, dict[str, jax.Array]]:
        """Runs every tower, so that `init` with this method creates all parameters."""
        return {
            "image": self(image, "image"),
            "sound": self(sound, "sound"),
            "text": self(text, "text", text_mask),
        }

    def example_inputs(self, batch_size: int = 1) -> dict[str, jax.Array]:
        """Zero inputs of the shapes the towers are built for: image (uint8), sound, text, text_mask."""
        size = self.vision.image_size
        return {
            "image": jnp.zeros((batch_size, size, size, 3), jnp.uint8),
            "sound": jnp.zeros((batch_size, self.sound.time_steps, self.sound.freq_bins)),
            "text": jnp.zeros((batch_size, self.text.max_words, self.text.word_dim)),
            "text_mask": jnp.ones((batch_size, self.text.max_words), bool),
        }


def init_params(
    model: TriModalNet, rng: jax.Array, example: Mapping[str, jax.Array] | None = None
) -> Any:
    """Parameters of all three towers and the head (float32).

    example: optional inputs by name ("image", "sound", "text", "text_mask"), any batch size; missing
    names fall back on `model.example_inputs()`. Wrap in jax.eval_shape to get shapes without memory.
    """
    inputs = {**model.example_inputs(), **(example or {})}
    variables = model.init(
        rng,
        inputs["image"],
        inputs["sound"],
        inputs["text"],
        inputs["text_mask"],
        method=TriModalNet.all_modalities,
    )
    return variables["params"]


def create_sound_tower(cfg: Any, dtype: Any = jnp.float32) -> SoundTower:
    """The sound tower of config.model (`cfg`)."""
    sound = cfg.sound
    return SoundTower(
        channels=tuple(sound.channels),
        kernels=tuple(sound.kernels),
        strides=tuple(sound.strides),
        tower_dim=cfg.tower_dim,
        time_steps=sound.time_steps,
        freq_bins=sound.freq_bins,
        dtype=dtype,
    )


def create_model(cfg: Any) -> TriModalNet:
    """TriModalNet from config.model (dtype, tower_dim, fc_dims, num_classes, vision, sound, text;
    vision.normalization, conv_norm, fresh_channels and features_scale are optional, with the defaults
    of VisionTower; word_head=True gives the head a "words" output of text.word_dim)."""
    dtype = DTYPES[cfg.dtype]
    vision, text = cfg.vision, cfg.text
    return TriModalNet(
        vision=VisionTower(
            channels=tuple(vision.channels),
            kernels=tuple(vision.kernels),
            strides=tuple(vision.strides),
            pool=vision.pool,
            tower_dim=cfg.tower_dim,
            image_size=vision.image_size,
            dtype=dtype,
            normalization=vision.get("normalization", "symmetric"),
            conv_norm=vision.get("conv_norm", "none"),
            fresh_channels=tuple(vision.get("fresh_channels", ())),
            features_scale=vision.get("features_scale", 1.0),
        ),
        sound=create_sound_tower(cfg, dtype),
        text=TextTower(
            channels=tuple(text.channels),
            kernels=tuple(text.kernels),
            tower_dim=cfg.tower_dim,
            max_words=text.max_words,
            word_dim=text.word_dim,
            dtype=dtype,
            bag=text.get("bag", False),
        ),
        head=SharedHead(
            fc_dims=tuple(cfg.fc_dims),
            num_classes=cfg.num_classes,
            dtype=dtype,
            word_dim=text.word_dim if cfg.get("word_head", False) else 0,
        ),
    )
