"""Training-batch augmentation: image shifts and flips, sound windows and masks, caption word dropout.

Every draw for global batch `step` of a stream comes from one generator seeded by (seed, stream, step),
made for the whole global batch; a host applies the draws of its own rows. So an augmented batch is a
pure function of (seed, step), whatever the number of hosts, and a resumed run sees the same batches.
Small real data sets overfit without it; evaluation never augments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

_AUGMENT_TAG = 7  # keeps these draws apart from the sampler's permutation seeds


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """See config.augment in experiments/configs/base.py; sound_steps: the window training reads
    (0: the whole stored clip)."""

    image_shift: int = 0
    image_flip: bool = False
    sound_steps: int = 0
    time_masks: int = 0
    time_mask_width: int = 8
    freq_masks: int = 0
    freq_mask_width: int = 8
    word_dropout: float = 0.0

    def is_identity(self, stored_sound_steps: int) -> bool:
        """True when nothing would change (the batches then skip augmentation entirely)."""
        window = self.sound_steps and self.sound_steps != stored_sound_steps
        return not (self.image_shift or self.image_flip or window or self.time_masks
                    or self.freq_masks or self.word_dropout)  # fmt: skip

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Any, sound_steps: int = 0) -> AugmentConfig:
        """From config.augment (a ConfigDict or mapping) and the model's sound window."""
        values = dict(cfg) if isinstance(cfg, Mapping) else dict(cfg.items())
        names = {f.name for f in dataclasses.fields(cls)} - {"sound_steps"}
        return cls(sound_steps=sound_steps, **{k: v for k, v in values.items() if k in names})


def batch_rng(seed: int, stream_id: int, step: int) -> np.random.Generator:
    """The generator of every augmentation draw of one global batch of one stream."""
    return np.random.default_rng([seed, _AUGMENT_TAG, stream_id, step])


def shift_and_flip(
    images: np.ndarray, shifts: np.ndarray, flips: np.ndarray, max_shift: int
) -> np.ndarray:
    """uint8 [B, H, W, C] moved by shifts [B, 2] (rows, cols in [-max_shift, max_shift]), edge values
    filling the border, then mirrored where flips [B] is True."""
    if max_shift:
        s = max_shift
        padded = np.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
        h, w = images.shape[1:3]
        images = np.stack(
            [
                padded[i, s + dy : s + dy + h, s + dx : s + dx + w]
                for i, (dy, dx) in enumerate(shifts)
            ]
        )
    return np.where(flips[:, None, None, None], images[:, :, ::-1], images)


def sound_windows(sounds: np.ndarray, starts: np.ndarray, steps: int) -> np.ndarray:
    """[B, T, F] -> [B, steps, F]: row i's frames starts[i] .. starts[i] + steps."""
    return np.stack([s[start : start + steps] for s, start in zip(sounds, starts, strict=True)])


def mask_bands(sounds: np.ndarray, axis: int, starts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Sets bands of [B, T, F] to 0 (a log spectrogram's mean, as the builders store it) along axis 1
    (time) or 2 (frequency); starts and widths are [B, masks]."""
    positions = np.arange(sounds.shape[axis])
    band = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    hit = band.any(axis=1)  # [B, size]
    hit = hit[:, :, None] if axis == 1 else hit[:, None, :]
    return np.where(hit, 0.0, sounds).astype(sounds.dtype)


def drop_words(
    text: np.ndarray, mask: np.ndarray, drop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Drops the words where drop [B, L] is True from text [B, L, D] / mask [B, L], moving the kept ones
    to the front so the caption reads on without a gap; a caption keeps at least its first word."""
    keep = mask & ~drop
    first = np.argmax(mask, axis=1)
    none_left = ~keep.any(axis=1) & mask.any(axis=1)
    keep[none_left, first[none_left]] = True
    order = np.argsort(~keep, axis=1, kind="stable")  # kept words first, in caption order
    new_text = np.take_along_axis(text, order[..., None], axis=1)
    new_mask = np.take_along_axis(keep, order, axis=1)
    return np.where(new_mask[..., None], new_text, 0).astype(text.dtype), new_mask


def augment_sounds(
    sound: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    global_size: int,
    rows: slice,
) -> np.ndarray:
    """This host's rows [b, T, F] of a global batch of sounds -> [b, sound_steps or T, F]: a random
    window of each clip, then its time and frequency masks (draws made for all `global_size` rows)."""
    steps = cfg.sound_steps or sound.shape[1]
    starts = rng.integers(0, sound.shape[1] - steps + 1, global_size)[rows]
    sound = sound_windows(sound, starts, steps)
    for axis, count, width in ((1, cfg.time_masks, cfg.time_mask_width),
                               (2, cfg.freq_masks, cfg.freq_mask_width)):  # fmt: skip
        if count:
            widths = rng.integers(0, width + 1, (global_size, count))[rows]
            size = max(1, sound.shape[axis] - width)
            begins = rng.integers(0, size, (global_size, count))[rows]
            sound = mask_bands(sound, axis, begins, widths)
    return sound


def augment(
    batch: dict[str, np.ndarray],
    cfg: AugmentConfig,
    rng: np.random.Generator,
    global_size: int,
    rows: slice,
) -> dict[str, np.ndarray]:
    """One host's rows of an augmented global batch.

    Args:
      batch: this host's rows of one stream: "image" uint8 [b, H, W, 3], and "sound" float32 [b, T, F] or
        "text" float32 [b, L, D] with "text_mask" bool [b, L]; other entries pass through.
      cfg: what to apply.
      rng: batch_rng(seed, stream, step): every draw is made for all `global_size` rows.
      global_size: B, the global batch.
      rows: this host's rows of the global batch (length b).
    """
    out = dict(batch)
    image = batch["image"]
    s = cfg.image_shift
    shifts = rng.integers(-s, s + 1, (global_size, 2))[rows]
    flips = (rng.random(global_size) < 0.5)[rows] & cfg.image_flip
    out["image"] = shift_and_flip(image, shifts, flips, s)
    if "sound" in batch:
        out["sound"] = augment_sounds(batch["sound"], cfg, rng, global_size, rows)
    if "text" in batch:
        words = batch["text_mask"].shape[1]
        drop = (rng.random((global_size, words)) < cfg.word_dropout)[rows]
        out["text"], out["text_mask"] = drop_words(batch["text"], batch["text_mask"], drop)
    return out
