"""Model-FLOPs utilization of the paper config's train step on an accelerator (run by accelerator.sh).

MFU = XLA's FLOPs per step (cost analysis of the compiled step, summed over devices) / step time / peak,
against both the chip's published dense peak (BENCH_PEAK_TFLOPS, else a table keyed by device_kind) and
a measured large matmul in the same dtype. Synthetic batches, teacher_probs included (no teacher runs).

python -m benchmarks.accelerator                  # paper config, bfloat16, 128 per pair stream
python -m benchmarks.accelerator --cpu-smoke      # tiny config, bfloat16, on CPU: checks the code path
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import common, train_step

# Dense (no sparsity) peak TFLOP/s per chip, bfloat16, from the vendors' data sheets.
PEAK_BF16_TFLOPS = {
    "NVIDIA H200": 989.0,
    "NVIDIA H100 80GB HBM3": 989.0,
    "NVIDIA H100 PCIe": 756.0,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
    "NVIDIA L4": 121.0,
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5p": 459.0,
}
TARGET_MFU = 0.40


def chip_peak(device_kind: str) -> float | None:
    """Peak FLOP/s of one chip: BENCH_PEAK_TFLOPS if set, else the table (prefix match), else None."""
    if os.environ.get("BENCH_PEAK_TFLOPS"):
        return float(os.environ["BENCH_PEAK_TFLOPS"]) * 1e12
    for kind, tflops in PEAK_BF16_TFLOPS.items():
        if device_kind.startswith(kind):
            return tflops * 1e12
    return None


def run(config_name: str, batch_size: int, dtype: str, matmul_size: int, repeats: int) -> dict:
    config = common.load_config(config_name, **{"model.dtype": dtype})
    device_kind = jax.devices()[0].device_kind
    matmul = common.matmul_peak(jnp.dtype(dtype), matmul_size, repeats=5)
    step = train_step.measure(config, batch_size, warmup=3, repeats=repeats)
    peak = chip_peak(device_kind)
    devices = step["devices"]
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": common.machine(),
        "config": config_name,
        "train_step": step,
        "matmul": matmul,
        "peak_flops_per_s_per_chip": peak,
        "mfu_vs_peak": step["flops_per_s"] / (peak * devices) if peak else None,
        "ratio_to_matmul": step["flops_per_s"] / (matmul["flops_per_s"] * devices),
        "target_mfu": TARGET_MFU,
    }
    result["target_met"] = (
        None if result["mfu_vs_peak"] is None else result["mfu_vs_peak"] >= TARGET_MFU
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny config on CPU, seconds")
    parser.add_argument("--config", default="paper")
    parser.add_argument("--batch_size", type=int, default=128, help="rows per pair stream")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--matmul_size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=os.environ.get("OUT") or "benchmarks/results")
    args = parser.parse_args()
    if args.cpu_smoke:
        jax.config.update("jax_platforms", "cpu")
        args.config, args.batch_size, args.matmul_size, args.repeats = "tiny", 8, 256, 3
    result = run(args.config, args.batch_size, args.dtype, args.matmul_size, args.repeats)
    result["cpu_smoke"] = args.cpu_smoke
    os.makedirs(args.out, exist_ok=True)
    kind = "smoke" if args.cpu_smoke else "accelerator"
    path = os.path.join(args.out, f"{result['date']}-{kind}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    step = result["train_step"]
    mfu = result["mfu_vs_peak"]
    print(
        f"{result['machine']['device_kind']} x{step['devices']}: {args.config} {args.dtype} "
        f"batch {args.batch_size}/stream: {step['examples_per_s']:.0f} examples/s, "
        f"{step['flops_per_s'] / 1e12:.1f} TFLOP/s, "
        f"MFU {'n/a' if mfu is None else f'{mfu:.1%}'} (target {TARGET_MFU:.0%}), "
        f"{result['ratio_to_matmul']:.1%} of a measured {args.matmul_size}^2 {args.dtype} matmul "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
