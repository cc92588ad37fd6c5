"""Tiny shapes for tests and smoke runs: the small world, narrow towers, a few steps.

python -m experiments.train --config=experiments/configs/tiny.py --workdir=/tmp/tiny
"""

import ml_collections

from experiments.configs.base import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.data.builder_config = "small"
    c.data.image_size = 24
    c.data.audio.update(n_fft=32, hop_length=500, time_steps=16)
    c.data.text.update(max_words=12, word_dim=8, background_sentences=500)
    c.model.tower_dim = 32
    c.model.fc_dims = (32, 32)
    c.model.vision.update(channels=(8, 8, 8, 8, 8), kernels=(3, 3, 3, 3, 3))
    c.model.sound.update(time_steps=16, channels=(8, 8, 8, 8), kernels=(3, 3, 3, 3))
    c.model.sound.strides = (1, 1, 1, 1)
    c.model.text.update(channels=(8, 8, 8, 8))
    c.teacher.update(
        image_size=24,
        channels=(8, 8, 8, 8, 8),
        kernels=(3, 3, 3, 3, 3),
        hidden=(32, 32),
        total_steps=20,
        batch_size=32,
    )
    c.teacher.optimizer.warmup_steps = 3
    c.optimizer.warmup_steps = 2
    c.batch_size = 16
    c.total_steps = 20
    c.log_every = 5
    c.checkpoint_every = 10
    c.eval_every = 0
    c.eval_items = 64
    c.eval_chunk = 64
    c.lock()
    return c
