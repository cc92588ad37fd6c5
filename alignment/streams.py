"""The stream layout, stated once: which modalities each training stream pairs, which stored features
carry each modality, and the shapes one example of each stream has under a model config."""

from typing import Any

import jax
import numpy as np

MODALITIES = ("image", "sound", "text")
# Stored features that carry each modality into the network.
MODALITY_INPUTS = {"image": ("image",), "sound": ("sound",), "text": ("text", "text_mask")}
# The two training streams, each a pair of modalities (the image is the bridge).
STREAMS = {"image_sound": ("image", "sound"), "image_text": ("image", "text")}
# What a stream's batch may carry into the jitted step; anything else (ids, labels) stays on the host.
STEP_INPUTS = ("image", "sound", "text", "text_mask", "teacher_probs")


def stream_features(stream: str) -> tuple[str, ...]:
    """The stored features a stream's batches hold, e.g. ("image", "text", "text_mask")."""
    return tuple(name for m in STREAMS[stream] for name in MODALITY_INPUTS[m])


def stream_flags(stream: str) -> tuple[str, ...]:
    """The boolean features that mark a row as belonging to the stream, e.g. ("has_image", "has_sound")."""
    return tuple(f"has_{m}" for m in STREAMS[stream])


def example_batch(model_cfg: Any) -> dict[str, dict[str, jax.ShapeDtypeStruct]]:
    """One example of each stream, as ShapeDtypeStructs [1, ...], at the shapes config.model takes."""
    size = model_cfg.vision.image_size
    shapes = {
        "image": ((1, size, size, 3), np.uint8),
        "sound": ((1, model_cfg.sound.time_steps, model_cfg.sound.freq_bins), np.float32),
        "text": ((1, model_cfg.text.max_words, model_cfg.text.word_dim), np.float32),
        "text_mask": ((1, model_cfg.text.max_words), np.bool_),
    }
    return {
        stream: {name: jax.ShapeDtypeStruct(*shapes[name]) for name in stream_features(stream)}
        for stream in STREAMS
    }
