"""sharding_memory: what FSDP and rematerialization save and cost.

Memory: the paper config's per-device bytes of parameters and optimizer state (from the state's
layout) and XLA's memory analysis of its compiled step (arguments, outputs, the largest temporaries),
replicated against FSDP over all 8 devices, each with the towers' remat off and on. Nothing of the
paper model is allocated: the step is compiled from abstract shapes (jax.eval_shape), so this runs
where its replicated state (8 copies of 1.2 GB) would not fit.

Time: the same four variants' step time on the world config (the paper step does not run on these
CPUs in minutes), as ratios to the replicated step without remat. 8 fake CPU devices share the host's
cores, so FSDP's gathers are memory copies here, not network transfers: the ratios show the compute
that remat repeats and the copies FSDP adds, not an accelerator's interconnect. Run in its own process
(the device count is fixed when JAX is imported):

python -m benchmarks.sharding_memory   # one worker: prints one JSON line
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from alignment import parallel
from benchmarks import common, train_step
from experiments.runtime import checkpointing, restore
from experiments.runtime.optimizer import make_optimizer

DEVICES = 8
# name -> (devices per 'fsdp' group, config.model.remat)
VARIANTS = {
    "replicated": (1, "none"),
    "replicated_remat": (1, "full"),
    "fsdp": (DEVICES, "none"),
    "fsdp_remat": (DEVICES, "full"),
}
# The paper config's own batch per pair stream (32 rows per device): compiled, never run, so it costs
# no memory here, and its activations are what remat acts on.
PAPER_BATCH = 256
WORLD_BATCH = 64  # the world config's own
TARGET_STATE_RATIO = 1 / 6  # FSDP's per-device parameter + optimizer bytes against replicated


def measure(repeats: int = 5, timeout_s: float = 3600) -> dict[str, Any]:
    """The worker's result (see _worker), run in a process with DEVICES fake CPU devices."""
    return common.run_on_fake_devices(
        "benchmarks.sharding_memory", DEVICES, [f"--repeats={repeats}"], timeout_s
    )


def table_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The run table's rows: per variant, the paper state and temporaries per device and the world
    step time, each also as a ratio to replicated."""
    if "error" in result:
        return [("sharding_memory", f"error: {result['error']}")]
    rows = []
    for name in VARIANTS:
        paper, world = result["paper"][name], result["world"][name]
        rows.append(
            (
                f"sharding {name}: paper state / temp per device; world step",
                f"{paper['state_bytes_per_device'] / 2**20:.0f} MiB ({paper['state_ratio']:.3f}x) / "
                f"{paper['temp_bytes'] / 2**20:.0f} MiB ({paper['temp_ratio']:.2f}x); "
                f"{world['step_s'] * 1e3:.0f} ms ({world['step_time_ratio']:.2f}x)",
            )
        )
    return rows


def _bytes_per_device(tree: Any) -> int:
    """Bytes one device holds of `tree` (ShapeDtypeStructs with shardings): each leaf's shard."""
    return sum(
        int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize
        for x in jax.tree.leaves(tree)
    )


def compiled_step_memory(config: Any, fsdp: int, batch_size: int) -> dict[str, int]:
    """Per-device bytes of the state (params, opt_state) as `fsdp` lays it out, and the compiled step's
    memory analysis, from abstract shapes only."""
    mesh = parallel.make_mesh(fsdp=fsdp)
    model, abstract = restore.student_abstract_state(config)
    state = checkpointing.target_abstract(abstract, mesh)
    rows = NamedSharding(parallel.data_mesh(mesh), P(parallel.AXIS))
    batch = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rows),
        common.synthetic_batch(config, batch_size),
    )
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    step = parallel.make_train_step(model, optimizer, config.loss, mesh)
    compiled = step.lower(state, batch).compile()
    params, opt_state = _bytes_per_device(state.params), _bytes_per_device(state.opt_state)
    return {
        "params_bytes_per_device": params,
        "opt_state_bytes_per_device": opt_state,
        "state_bytes_per_device": params + opt_state,
        **common.compiled_memory(compiled),
    }


def _worker(repeats: int) -> dict[str, Any]:
    """{"paper": {variant: memory}, "world": {variant: step time}}, each with ratios against
    "replicated", and "fsdp_state_ratio" (the target's figure)."""
    if jax.device_count() != DEVICES:
        raise RuntimeError(f"expected {DEVICES} devices, JAX sees {jax.device_count()}")
    result: dict[str, Any] = {"devices": DEVICES, "paper_batch_per_stream": PAPER_BATCH}
    paper, world = {}, {}
    for name, (fsdp, remat) in VARIANTS.items():
        config = common.load_config("paper", **{"model.remat": remat})
        paper[name] = compiled_step_memory(config, fsdp, PAPER_BATCH)
    for name, (fsdp, remat) in VARIANTS.items():
        config = common.load_config("world", **{"model.remat": remat})
        mesh = parallel.make_mesh(fsdp=fsdp)
        timing = train_step.measure(config, WORLD_BATCH, warmup=2, repeats=repeats, mesh=mesh)
        world[name] = {k: timing[k] for k in ("step_s", "step_min_s", "step_max_s", "memory")}
    base, base_time = paper["replicated"], world["replicated"]["step_s"]
    for name in VARIANTS:
        paper[name]["state_ratio"] = (
            paper[name]["state_bytes_per_device"] / base["state_bytes_per_device"]
        )
        paper[name]["temp_ratio"] = paper[name]["temp_bytes"] / base["temp_bytes"]
        world[name]["step_time_ratio"] = world[name]["step_s"] / base_time
    result.update(paper=paper, world=world, fsdp_state_ratio=paper["fsdp"]["state_ratio"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(_worker(args.repeats)))


if __name__ == "__main__":
    main()
