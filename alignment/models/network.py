"""The tri-modal network: one tower per modality feeding one shared head."""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from alignment.models.blocks import DTYPES, M, from_block
from alignment.models.head import SharedHead
from alignment.models.sound import SoundTower
from alignment.models.text import TextTower
from alignment.models.vision import VisionTower

MODALITIES = ("image", "sound", "text")
# config.model.remat: what each tower keeps from its forward pass for the backward pass. "none": every
# activation; "full": only its input (the tower's forward runs again in the backward pass); "dots": the
# outputs of matmuls without batch dimensions (its Dense layers), its convolutions and the rest
# recomputed.
REMAT_POLICIES: dict[str, Any] = {
    "full": None,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


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


def rematerialized(cls: type[M], remat: str) -> type[M]:
    """`cls`, or `cls` under nn.remat with REMAT_POLICIES[remat]: the same parameters and outputs, its
    activations recomputed in the backward pass instead of kept. remat: "none" or a REMAT_POLICIES key."""
    if remat == "none":
        return cls
    if remat not in REMAT_POLICIES:
        raise ValueError(
            f"config.model.remat={remat!r}: expected one of {('none', *REMAT_POLICIES)}"
        )
    return nn.remat(cls, policy=REMAT_POLICIES[remat])


def create_sound_tower(cfg: Any, dtype: Any = jnp.float32) -> SoundTower:
    """The sound tower of config.model (`cfg`), rematerialized as cfg.remat says (default "none")."""
    tower = rematerialized(SoundTower, cfg.get("remat", "none"))
    return from_block(tower, cfg.sound, tower_dim=cfg.tower_dim, dtype=dtype)


def create_model(cfg: Any) -> TriModalNet:
    """TriModalNet from config.model: each tower from its block (vision, sound, text) with the model's
    tower_dim and dtype and rematerialized as cfg.remat says (default "none"), the head from fc_dims and
    num_classes (word_head=True gives it a "words" output of text.word_dim)."""
    dtype = DTYPES[cfg.dtype]
    tower = dict(tower_dim=cfg.tower_dim, dtype=dtype)
    remat = cfg.get("remat", "none")
    return TriModalNet(
        vision=from_block(rematerialized(VisionTower, remat), cfg.vision, **tower),
        sound=create_sound_tower(cfg, dtype),
        text=from_block(rematerialized(TextTower, remat), cfg.text, **tower),
        head=from_block(SharedHead, cfg, word_dim=cfg.text.word_dim if cfg.word_head else 0),
    )
