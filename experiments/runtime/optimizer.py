"""The students' optimizer, built from config.optimizer (optax only, so the benchmarks can use it on a
machine without the data stack)."""

from typing import Any

import optax


def make_optimizer(opt_cfg: Any, total_steps: int) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay, after global-norm gradient clipping (none at an
    infinite grad_clip)."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        opt_cfg.learning_rate,
        min(opt_cfg.warmup_steps, max(total_steps - 1, 1)),
        max(total_steps, 2),
        end_value=opt_cfg.learning_rate * 0.01,
    )
    return optax.chain(
        optax.clip_by_global_norm(opt_cfg.grad_clip),
        optax.adamw(schedule, weight_decay=opt_cfg.weight_decay),
    )
