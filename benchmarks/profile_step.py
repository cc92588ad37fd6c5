"""Where a train step's time goes: a jax.profiler trace of the compiled step, per XLA op, by layer.

python -m benchmarks.profile_step                         # world config, 64 rows per stream
python -m benchmarks.profile_step --config=paper --batch=8 --top=40
taskset -c 0 python -m benchmarks.profile_step            # one core: op times without overlap

Each traced op (an HLO instruction of the compiled step) is attributed through its `op_name` metadata to
the module that issued it (e.g. vision/features/conv1) and to the forward or the backward pass
(autodiff's transpose). Ops XLA added or rewrote itself (layout transposes, copies, some convolution
gradients) carry no source and are listed together. On several cores independent ops overlap, so the
op times can add up to more than the step; pinned to one core (`taskset -c 0`) they add up to it. The
trace stays in --logdir for Perfetto or TensorBoard.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import jax

from benchmarks import common, train_step

_DEFINITION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
NO_SOURCE = "(no source metadata: layout transposes, copies, ops XLA rewrote)"


def instruction_sources(hlo_text: str) -> dict[str, str]:
    """{HLO instruction name: its op_name metadata ("" if none)} over every computation of hlo_text."""
    sources = {}
    for line in hlo_text.splitlines():
        match = _DEFINITION.match(line)
        if match:
            op_name = _OP_NAME.search(line)
            sources[match.group(1)] = op_name.group(1) if op_name else ""
    return sources


def attribute(op_name: str) -> tuple[str, str]:
    """op_name metadata -> (pass, module path).

    "jit(step)/transpose(jvp(TriModalNet))/vision/features/conv1/conv_general_dilated"
    -> ("backward", "vision/features/conv1"); wrappers such as jit(relu) and the primitive are dropped.
    """
    if not op_name:
        return "", NO_SOURCE
    parts = op_name.split("/")
    direction = "backward" if any(p.startswith("transpose(") for p in parts) else "forward"
    modules = [p for p in parts[:-1] if "(" not in p]
    return direction, "/".join(modules) or "(outside the model: loss, optimizer, collectives)"


def op_times(
    trace_events: Iterable[Mapping[str, Any]], sources: Mapping[str, str]
) -> dict[str, float]:
    """Total microseconds per HLO instruction over the trace's complete ("X") events."""
    totals: dict[str, float] = collections.Counter()
    for event in trace_events:
        if event.get("ph") == "X" and event.get("name") in sources:
            totals[event["name"]] += float(event.get("dur", 0.0))
    return dict(totals)


def summarize(
    times_us: Mapping[str, float], sources: Mapping[str, str], steps: int
) -> dict[str, Any]:
    """Milliseconds per step by (pass, module), and the ops themselves, largest first."""
    by_module: dict[str, float] = collections.Counter()
    ops = []
    for name, micros in times_us.items():
        direction, module = attribute(sources[name])
        ms = micros / 1e3 / steps
        by_module[f"{direction} {module}".strip()] += ms
        ops.append(
            {"op": name, "ms": ms, "pass": direction, "module": module, "source": sources[name]}
        )
    ops.sort(key=lambda row: -row["ms"])
    modules = sorted(by_module.items(), key=lambda kv: -kv[1])
    return {"op_ms_total": sum(by_module.values()), "by_module_ms": dict(modules), "ops": ops}


def _load_trace(logdir: str) -> list[dict[str, Any]]:
    paths = sorted(
        glob.glob(os.path.join(logdir, "plugins", "profile", "*", "perfetto_trace.json.gz"))
    )
    if not paths:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {logdir}/plugins/profile")
    with gzip.open(paths[-1]) as f:
        trace = json.load(f)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def profile(config: Any, batch_size: int, *, steps: int = 5, logdir: str) -> dict[str, Any]:
    """Traces `steps` train steps (after 3 untimed ones) and summarizes them; see the module docstring."""
    compiled, state, batch = train_step.build_step(config, batch_size)
    one_step = train_step.step_runner(compiled, state, batch)
    timing = common.timed(one_step, warmup=3, repeats=steps)
    with jax.profiler.trace(logdir, create_perfetto_trace=True):
        for _ in range(steps):
            one_step()
    sources = instruction_sources(compiled.as_text())
    summary = summarize(op_times(_load_trace(logdir), sources), sources, steps)
    summary["step_ms"] = timing["median_s"] * 1e3
    summary["logdir"] = logdir
    return summary


def print_summary(summary: Mapping[str, Any], top: int) -> None:
    step = summary["step_ms"]
    print(
        f"step {step:.1f} ms (median, untraced); traced op time {summary['op_ms_total']:.1f} ms/step"
    )
    print(f"\n{'ms/step':>8}  {'% step':>6}  pass and module")
    modules = list(summary["by_module_ms"].items())
    for key, ms in modules[:top]:
        print(f"{ms:8.2f}  {ms / step:6.1%}  {key}")
    rest = sum(ms for _, ms in modules[top:])
    if rest:
        print(f"{rest:8.2f}  {rest / step:6.1%}  ({len(modules) - top} smaller entries)")
    print(f"\n{'ms/step':>8}  op (largest {top})")
    for row in summary["ops"][:top]:
        print(f"{row['ms']:8.2f}  {row['op']:<32} {row['pass']:<8} {row['module']}")
    print(f"\ntrace: {summary['logdir']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--config", default="world", choices=common.CONFIGS)
    parser.add_argument(
        "--batch", type=int, default=None, help="rows per pair stream (default: config's)"
    )
    parser.add_argument("--steps", type=int, default=5, help="traced steps")
    parser.add_argument("--top", type=int, default=25, help="largest modules and ops to list")
    parser.add_argument("--logdir", default=None, help="where the trace goes (default: a temp dir)")
    args = parser.parse_args()
    # bfloat16 is emulated on CPUs: profile the paper config in float32 there, as benchmarks.run does.
    overrides = {"model.dtype": "float32"} if jax.default_backend() == "cpu" else {}
    config = common.load_config(args.config, **overrides)
    logdir = args.logdir or tempfile.mkdtemp(prefix="profile_step_")
    summary = profile(config, args.batch or config.batch_size, steps=args.steps, logdir=logdir)
    print_summary(summary, args.top)


if __name__ == "__main__":
    main()
