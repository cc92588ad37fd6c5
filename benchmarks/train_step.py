"""Training-step throughput, FLOPs and compiled memory of a config on synthetic batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from alignment import parallel
from alignment.models import create_model
from benchmarks import common
from experiments.runtime.optimizer import make_optimizer


def build_step(config: Any, batch_size: int, mesh: Any = None) -> tuple[Any, Any, Any]:
    """(compiled step, state, sharded batch) for `batch_size` rows per pair stream on `mesh`."""
    mesh = mesh or parallel.make_mesh()
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    host_batch = common.synthetic_batch(config, batch_size)
    state = parallel.create_train_state(
        model, optimizer, jax.random.PRNGKey(config.seed), host_batch, mesh
    )
    step = parallel.make_train_step(model, optimizer, config.loss, mesh)
    batch = parallel.shard_batch(host_batch, mesh)
    compiled = step.lower(state, batch).compile()
    return compiled, state, batch


def step_runner(compiled: Any, state: Any, batch: Any) -> Callable[[], None]:
    """A no-argument function that runs one step on `batch`, keeps the new state for the next call (the
    old one is donated) and blocks until the step is done."""
    holder = [state]

    def one_step() -> None:
        holder[0], metrics = compiled(holder[0], batch)
        jax.block_until_ready((holder[0], metrics))

    return one_step


def measure(
    config: Any, batch_size: int, *, warmup: int = 3, repeats: int = 10, mesh: Any = None
) -> dict[str, Any]:
    """Examples per second (2 * batch_size per step: both pair streams), step time, XLA FLOPs per step
    (all devices), achieved FLOP/s and the compiled step's memory (per device), after `warmup` steps,
    median of `repeats`."""
    compiled, state, batch = build_step(config, batch_size, mesh)
    timing = common.timed(step_runner(compiled, state, batch), warmup=warmup, repeats=repeats)
    devices = batch["image_sound"]["image"].sharding.mesh.size
    # The compiled program is the per-device one (shard_map): its cost analysis covers one device.
    flops = common.compiled_flops(compiled) * devices
    examples = 2 * batch_size
    return {
        "batch_per_stream": batch_size,
        "examples_per_step": examples,
        "devices": devices,
        "dtype": config.model.dtype,
        "step_s": timing["median_s"],
        "step_min_s": timing["min_s"],
        "step_max_s": timing["max_s"],
        "examples_per_s": examples / timing["median_s"],
        "flops_per_step": flops,
        "flops_per_s": flops / timing["median_s"],
        "memory": common.compiled_memory(compiled),
    }
