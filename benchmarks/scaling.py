"""Scaling: one global batch on 1, 2, 4 and 8 fake CPU devices, each count in its own process (the device
count is fixed when JAX is imported). On a CPU the devices share the same cores, so this measures the
overhead of sharding (collectives, per-device dispatch), not a speed-up.

python -m benchmarks.scaling --devices=4   # one worker: prints one JSON line
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DEVICE_COUNTS = (1, 2, 4, 8)


def measure(
    config_name: str = "world",
    batch_size: int = 64,
    counts: tuple[int, ...] = DEVICE_COUNTS,
    repeats: int = 8,
    timeout_s: float = 300,
) -> dict[str, Any]:
    """examples/s of the same global batch (batch_size per pair stream) on each device count."""
    rows = {}
    from benchmarks import common

    for count in counts:
        args = [f"--devices={count}", f"--config={config_name}", f"--batch_size={batch_size}",
                f"--repeats={repeats}"]  # fmt: skip
        rows[str(count)] = common.run_on_fake_devices("benchmarks.scaling", count, args, timeout_s)
    base = rows.get(str(counts[0]), {}).get("examples_per_s")
    for row in rows.values():
        if base and "examples_per_s" in row:
            row["relative_to_1"] = row["examples_per_s"] / base
    return {"config": config_name, "batch_per_stream": batch_size, "by_devices": rows}


def _worker(devices: int, config_name: str, batch_size: int, repeats: int) -> dict[str, Any]:
    import jax

    from benchmarks import common, train_step

    if jax.device_count() != devices:
        raise RuntimeError(f"expected {devices} devices, JAX sees {jax.device_count()}")
    result = train_step.measure(common.load_config(config_name), batch_size, repeats=repeats)
    keys = ("devices", "step_s", "step_min_s", "examples_per_s", "flops_per_step")
    return {k: result[k] for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--config", default="world")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(_worker(args.devices, args.config, args.batch_size, args.repeats)))


if __name__ == "__main__":
    main()
