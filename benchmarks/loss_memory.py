"""Loss memory: the ranking loss and its gradients at a large global batch over 8 fake CPU devices, the
negatives all-gathered against chunked around the mesh (config.loss.chunked), for each ranking kind:
XLA's per-device memory analysis of the compiled loss-and-gradient program (temporaries: what the loss
adds to a step's peak) and its time per call, as ratios on this machine.

The program is the train step's loss path (parallel.negatives, losses.objective) on one pair stream's
embeddings, both directions, differentiated per device as the step does; towers and optimizer are left
out so that the figures are the loss's own. Run in its own process (the device count is fixed when JAX
is imported):

python -m benchmarks.loss_memory   # one worker: prints one JSON line
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DEVICES = 8
GLOBAL_BATCH = 8192
KINDS = ("hinge", "infonce_learned", "sigmoid")
# The embedding widths measured: the world config's fc7 (memory and time) and the paper's (memory).
WIDTHS = {"world": 256, "paper": 4096}
TIMED_WIDTH = "world"


def measure(repeats: int = 3, timeout_s: float = 1800) -> dict[str, Any]:
    """Per kind and width: gathered and chunked per-device bytes, their temp ratio; per kind at the
    world width: seconds per call of each and their ratio."""
    from benchmarks import common

    return common.run_on_fake_devices(
        "benchmarks.loss_memory", DEVICES, [f"--repeats={repeats}"], timeout_s
    )


def table_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The run table's rows: per kind, temporaries gathered / chunked at each width and the time ratio."""
    if "error" in result:
        return [("loss_memory", f"error: {result['error']}")]
    rows = []
    for kind in KINDS:
        row = result[kind]
        for width_name, width in WIDTHS.items():
            temps = [row[f"{width_name}_{m}_memory"]["temp_bytes"] for m in ("gathered", "chunked")]
            rows.append(
                (
                    f"loss {kind} temp gathered / chunked, batch {result['global_batch']} x {width}",
                    " / ".join(f"{t / 2**20:.1f}" for t in temps)
                    + f" MiB per device ({row[f'{width_name}_temp_ratio']:.3f}x)",
                )
            )
        rows.append(
            (f"loss {kind} time chunked / gathered ({TIMED_WIDTH})", f"{row['time_ratio']:.2f}x")
        )
    return rows


def _loss_and_grads(kind: str, chunked: bool, mesh: Any) -> Any:
    """jit(shard_map) of (reps, loss_params) -> (loss, grads) as the train step's loss path."""
    import jax
    from jax import lax, shard_map
    from jax.sharding import PartitionSpec as P

    from alignment import losses, parallel
    from experiments.configs.base import base_config

    cfg = base_config().loss
    cfg.update(dict(objective="ranking", ranking_kind=kind, chunked=chunked))

    def per_device(reps, loss_params):
        gather, ring = parallel.negatives(cfg)
        local = jax.tree.map(lambda x: lax.pcast(x, parallel.AXIS, to="varying"), loss_params)

        def loss_fn(reps, loss_params):
            return losses.objective(reps, None, cfg, gather, None, loss_params, ring)[0]

        loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(reps, local)
        return lax.pmean(loss, parallel.AXIS), grads[0], lax.pmean(grads[1], parallel.AXIS)

    specs = (P(parallel.AXIS), P())
    out_specs = (P(), P(parallel.AXIS), P())
    return jax.jit(shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=out_specs))


def _inputs(kind: str, width: int, mesh: Any) -> tuple[Any, Any]:
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from alignment import losses, parallel
    from experiments.configs.base import base_config

    cfg = base_config().loss
    cfg.update(dict(objective="ranking", ranking_kind=kind))
    keys = jax.random.split(jax.random.key(0))
    sharding = NamedSharding(mesh, P(parallel.AXIS))
    pair = losses.STREAMS["image_sound"]
    reps = {
        "image_sound": {
            m: {"fc7": jax.random.normal(k, (GLOBAL_BATCH, width), jnp.float32)}
            for m, k in zip(pair, keys, strict=True)
        }
    }
    reps = jax.device_put(reps, sharding)
    loss_params = {"image_sound": losses.init_loss_params(cfg).get("image_sound", {})}
    return reps, jax.device_put(loss_params, parallel.replicated(mesh))


def _measure(kind: str, width: int, chunked: bool, repeats: int, mesh: Any) -> dict[str, Any]:
    """{"memory": XLA's per-device bytes[, "s": median seconds per call when repeats > 0]}."""
    import jax

    from benchmarks import common

    reps, loss_params = _inputs(kind, width, mesh)
    fn = _loss_and_grads(kind, chunked, mesh)
    result: dict[str, Any] = {
        "memory": common.compiled_memory(fn.lower(reps, loss_params).compile())
    }
    if repeats:
        times = common.timed(
            lambda: jax.block_until_ready(fn(reps, loss_params)), warmup=1, repeats=repeats
        )
        result["s"] = times["median_s"]
    return result


def _worker(repeats: int) -> dict[str, Any]:
    import jax

    from alignment import parallel

    if jax.device_count() != DEVICES:
        raise RuntimeError(f"expected {DEVICES} devices, JAX sees {jax.device_count()}")
    mesh = parallel.make_mesh()
    result: dict[str, Any] = {"devices": DEVICES, "global_batch": GLOBAL_BATCH, "widths": WIDTHS}
    for kind in KINDS:
        row: dict[str, Any] = {}
        for width_name, width in WIDTHS.items():
            for mode in ("gathered", "chunked"):
                timed = repeats if width_name == TIMED_WIDTH else 0
                measured = _measure(kind, width, mode == "chunked", timed, mesh)
                row[f"{width_name}_{mode}_memory"] = measured["memory"]
                if "s" in measured:
                    row[f"{width_name}_{mode}_s"] = measured["s"]
            gathered, chunked = (row[f"{width_name}_{m}_memory"] for m in ("gathered", "chunked"))
            row[f"{width_name}_temp_ratio"] = chunked["temp_bytes"] / gathered["temp_bytes"]
        row["time_ratio"] = row[f"{TIMED_WIDTH}_chunked_s"] / row[f"{TIMED_WIDTH}_gathered_s"]
        result[kind] = row
    result["max_temp_ratio"] = max(result[k][f"{w}_temp_ratio"] for k in KINDS for w in WIDTHS)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(_worker(args.repeats)))


if __name__ == "__main__":
    main()
