"""Runs every benchmark (`make bench`), prints a table and writes benchmarks/results/<YYYY-MM-DD>.json.

python -m benchmarks.run                        # everything: about 2.5 minutes on 2 quiet CPU cores,
                                                #   plus about 30 wall-minutes for teacher_memory on 2 busy ones
python -m benchmarks.run --only=train,pipeline  # a subset: matmul, train, pipeline, eval, scaling, first_step,
                                                #   input_memory, input_throughput, input_bound, teacher_memory
python -m benchmarks.run --only=teacher_memory --teacher_memory_jobs=evaluate  # some of its JOBS
python -m benchmarks.run --only=loss_memory     # the ranking loss gathered against chunked, 8 fake devices
python -m benchmarks.run --only=sharding_memory # replicated against FSDP, remat off and on, 8 fake devices

What each number means: benchmarks/README.md. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from benchmarks import (
    common,
    eval_speed,
    first_step,
    input_bound,
    input_scale,
    loss_memory,
    memory,
    nn_search,
    scaling,
    sharding_memory,
    teacher_memory,
    train_step,
)
from benchmarks import world_input as pipeline_bench

SECTIONS = (
    "matmul", "train", "pipeline", "eval", "scaling", "first_step", "input_memory", "input_throughput",
    "input_bound", "teacher_memory", "loss_memory", "nn_search",
    "sharding_memory",
)  # fmt: skip
TARGETS = {
    "world_utilization": 0.65,
    "pipeline_headroom": 3.0,
    "input_memory_ratio": 1.3,  # peak RSS growth while the rows grow 10x
    "cores_per_h200": 14,
    "input_bound": 0.05,  # fraction of the world step's time lost to its input
    "teacher_memory_ratio": 1.3,  # peak RSS growth of every teacher_memory job while the rows grow 8x
    "loss_memory_ratio": 0.25,  # chunked / gathered per-device temporaries of the ranking loss
    "sharding_state_ratio": 1 / 6,  # FSDP / replicated per-device parameter + optimizer bytes
}
RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")


def _section(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    start = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"bench: {name} ...", flush=True)
    results[name] = fn()
    results[name]["_load_1min_before"] = load
    results[name]["_load_1min_after"] = os.getloadavg()[0]
    results[name]["_wall_s"] = time.perf_counter() - start


def run(
    sections: tuple[str, ...],
    repeats: int,
    teacher_jobs: tuple[str, ...] = tuple(teacher_memory.JOBS),
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": common.machine(),
        "targets": TARGETS,
    }
    world = common.load_config("world")
    # bfloat16 is emulated (slow) on CPUs: the paper config runs in float32 here, 8 rows per stream.
    paper = common.load_config("paper", **{"model.dtype": "float32"})
    if "matmul" in sections or "train" in sections:
        _section(results, "matmul", lambda: common.matmul_peak(repeats=repeats))
    if "train" in sections:
        _section(
            results,
            "train_world",
            lambda: train_step.measure(world, world.batch_size, warmup=5, repeats=3 * repeats),
        )
        _section(
            results,
            "train_paper",
            lambda: train_step.measure(paper, 8, warmup=1, repeats=max(3, repeats // 2)),
        )
        peak = results["matmul"]["flops_per_s"]
        for name in ("train_world", "train_paper"):
            step = results[name]
            step["utilization_vs_matmul"] = step["flops_per_s"] / peak
            step["best_utilization_vs_matmul"] = step["flops_per_step"] / step["step_min_s"] / peak
    if "pipeline" in sections:
        _section(results, "pipeline", lambda: pipeline_bench.measure(world))
        if "train_world" in results:
            results["pipeline"]["headroom_vs_train_world"] = (
                results["pipeline"]["examples_per_s"] / results["train_world"]["examples_per_s"]
            )
    if "eval" in sections:
        _section(results, "embedding", lambda: eval_speed.measure_embedding(world))
        _section(results, "ranking", eval_speed.measure_ranking)
    train = {k[len("train_") :]: v for k, v in results.items() if k.startswith("train_")}
    results["memory"] = memory.measure(train)
    if "scaling" in sections:
        _section(results, "scaling", lambda: scaling.measure("world", world.batch_size))
    if "first_step" in sections:
        _section(results, "first_step", lambda: first_step.measure("world"))
    if "input_memory" in sections:
        _section(results, "input_memory", input_scale.measure_memory)
    if "input_throughput" in sections:
        _section(results, "input_throughput", input_scale.measure_throughput)
        results["cores_per_h200"] = results["input_throughput"]["cores_per_h200"]
    if "input_bound" in sections:
        _section(results, "input_bound", lambda: input_bound.measure(world))
    if "teacher_memory" in sections:
        _section(results, "teacher_memory", lambda: teacher_memory.measure(jobs=teacher_jobs))
    if "loss_memory" in sections:
        _section(results, "loss_memory", loss_memory.measure)
    if "nn_search" in sections:
        _section(results, "nn_search", nn_search.measure)
    if "sharding_memory" in sections:
        _section(results, "sharding_memory", sharding_memory.measure)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["targets_met"] = _targets_met(results)
    return results


def _targets_met(results: dict[str, Any]) -> dict[str, bool | None]:
    world = results.get("train_world", {}).get("utilization_vs_matmul")
    headroom = results.get("pipeline", {}).get("headroom_vs_train_world")
    memory = results.get("input_memory", {}).get("rss_ratio")
    cores = results.get("cores_per_h200")
    teacher = results.get("teacher_memory", {}).get("max_rss_ratio")
    bound = results.get("input_bound", {}).get("input_bound")
    loss = results.get("loss_memory", {}).get("max_temp_ratio")
    sharding = results.get("sharding_memory", {}).get("fsdp_state_ratio")
    return {
        "world_utilization": None if world is None else world >= TARGETS["world_utilization"],
        "pipeline_headroom": None if headroom is None else headroom >= TARGETS["pipeline_headroom"],
        "paper_h200_mfu": None,  # measured by benchmarks/accelerator.sh on a GPU
        "input_memory_ratio": None if memory is None else memory <= TARGETS["input_memory_ratio"],
        "cores_per_h200": None if cores is None else cores <= TARGETS["cores_per_h200"],
        "input_bound": None if bound is None else bound <= TARGETS["input_bound"],
        "teacher_memory_ratio": (
            None if teacher is None else teacher <= TARGETS["teacher_memory_ratio"]
        ),
        "loss_memory_ratio": None if loss is None else loss <= TARGETS["loss_memory_ratio"],
        "sharding_state_ratio": (
            None if sharding is None else sharding <= TARGETS["sharding_state_ratio"]
        ),
    }


def _rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("load average (1, 5, 15 min) at start", _fmt_load(results["machine"]["load_average"]))]
    if "matmul" in results:
        m = results["matmul"]
        rows.append(
            (f"matmul {m['size']}^2 {m['dtype']} peak", f"{m['flops_per_s'] / 1e9:.1f} GFLOP/s")
        )
    for name, label in (("train_world", "world"), ("train_paper", "paper (float32)")):
        if name in results:
            s = results[name]
            rows += [
                (f"train {label}: batch", f"{s['batch_per_stream']}/stream, {s['devices']} device(s)"),
                (f"train {label}: step (median / min)", f"{s['step_s'] * 1e3:.1f} / {s['step_min_s'] * 1e3:.1f} ms"),
                (f"train {label}: examples/s", f"{s['examples_per_s']:.3g}"),
                (f"train {label}: GFLOP/step (XLA)", f"{s['flops_per_step'] / 1e9:.2f}"),
                (f"train {label}: utilization vs matmul (median / best)",
                 f"{s['utilization_vs_matmul']:.1%} / {s['best_utilization_vs_matmul']:.1%}"),
            ]  # fmt: skip
    if "pipeline" in results:
        p = results["pipeline"]
        rows.append(("input pipeline examples/s", f"{p['examples_per_s']:.0f} ({p['data_set']})"))
        if "headroom_vs_train_world" in p:
            rows.append(
                ("input pipeline headroom vs world step", f"{p['headroom_vs_train_world']:.1f}x")
            )
    if "embedding" in results:
        e = results["embedding"]
        rows.append(("embed items/s image / sound / text (world)",
                     f"{e['image_items_per_s']:.0f} / {e['sound_items_per_s']:.0f} / {e['text_items_per_s']:.0f}"))  # fmt: skip
    if "ranking" in results:
        r = results["ranking"]
        for n in (5000, 25000):
            if f"ranks_{n}_s" in r:
                rows.append((f"rank {n} items: ranks / paper_median_rank",
                             f"{r[f'ranks_{n}_s']:.2f} / {r[f'paper_median_rank_{n}_s']:.2f} s"))  # fmt: skip
    mem = results["memory"]
    rows.append(("peak host RSS", f"{mem['peak_rss_bytes'] / 2**20:.0f} MiB"))
    for name in ("world", "paper"):
        step = mem.get(f"{name}_step")
        if step:
            rows.append((f"{name} step memory arg / out / temp",
                         " / ".join(f"{step[k] / 2**20:.1f}" for k in ("argument_bytes", "output_bytes", "temp_bytes")) + " MiB"))  # fmt: skip
    if "scaling" in results:
        for count, row in results["scaling"]["by_devices"].items():
            value = (
                f"{row['examples_per_s']:.0f} examples/s ({row.get('relative_to_1', 1):.2f}x)"
                if "examples_per_s" in row
                else f"error: {row['error']}"
            )
            rows.append((f"scaling: world on {count} fake CPU device(s)", value))
    if "first_step" in results:
        f = results["first_step"]
        rows.append(("first world step, cold / warm compilation cache",
                     f"{f['cold_s']:.1f} / {f['warm_s']:.1f} s ({f['ratio']:.1f}x)"))  # fmt: skip
    if "input_memory" in results:
        m = results["input_memory"]
        rows.append((f"input peak RSS, {m['rows'][0]} / {m['rows'][1]} rows ({m['config']} shapes)",
                     " / ".join(f"{b / 2**20:.0f}" for b in m["peak_rss_bytes"])
                     + f" MiB ({m['rss_ratio']:.2f}x for {m['rows_ratio']}x rows)"))  # fmt: skip
        rows.append(("stored bytes per row, " + " / ".join(m["bytes_per_row"]),
                     " / ".join(f"{b / 1e3:.1f} kB" for b in m["bytes_per_row"].values())))  # fmt: skip
    if "input_throughput" in results:
        t = results["input_throughput"]
        rows.append((f"input examples/s per core ({t['config']} shapes, {t['cores']} cores)",
                     f"{t['examples_per_s_per_core']:.0f} ({t['input_bytes_per_s_per_core'] / 1e6:.0f} MB/s)"))  # fmt: skip
        rows.append(("cores one H200 needs", t["derivation"]))
        rows.append(("input workers' start-up (first batch)", f"{t['first_batch_s']:.1f} s"))
    if "input_bound" in results:
        b = results["input_bound"]
        rows.append((f"world step fed by the pipeline / in memory ({b['input_workers']} workers)",
                     f"{b['step_fed_s'] * 1e3:.0f} / {b['step_in_memory_s'] * 1e3:.0f} ms: "
                     f"{b['input_bound']:.1%} lost to input"))  # fmt: skip
    if "teacher_memory" in results:
        m = results["teacher_memory"]
        for job, peaks in m["peak_rss_bytes"].items():
            rows.append((f"teacher_memory {job} peak RSS, {m['rows'][0]} / {m['rows'][1]} rows ({m['config']} image shape)",
                         " / ".join(f"{b / 2**20:.0f}" for b in peaks)
                         + f" MiB ({m['rss_ratio'][job]:.2f}x for {m['rows_ratio']}x rows)"))  # fmt: skip
    if "loss_memory" in results:
        rows += loss_memory.table_rows(results["loss_memory"])
    if "sharding_memory" in results:
        rows += sharding_memory.table_rows(results["sharding_memory"])
    if "nn_search" in results:
        rows += nn_search.table_rows(results["nn_search"])
    for target, met in results["targets_met"].items():
        rows.append((f"target {target}", {True: "met", False: "MISSED", None: "not measured"}[met]))
    rows.append(("load average at end", _fmt_load(results["machine"]["load_average_end"])))
    return rows


def _fmt_load(load: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


def print_table(results: dict[str, Any]) -> None:
    rows = _rows(results)
    width = max(len(k) for k, _ in rows)
    print(f"\nbenchmarks {results['date']} on {results['machine']['device_kind']} "
          f"({results['machine']['cpu_count']} cores, jax {results['machine']['jax']})")  # fmt: skip
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats (train: 3x this)")
    parser.add_argument(
        "--teacher_memory_jobs",
        default=",".join(teacher_memory.JOBS),
        help="comma-separated jobs of the teacher_memory section",
    )
    parser.add_argument("--out", default=RESULTS_DIR)
    args = parser.parse_args()
    sections = tuple(s for s in args.only.split(",") if s)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; expected some of {SECTIONS}")
    try:
        teacher_jobs = teacher_memory.parse_jobs(args.teacher_memory_jobs)
    except ValueError as e:
        parser.error(str(e))
    results = run(sections, args.repeats, teacher_jobs)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{results['date']}.json")
    # A second run on the same day gets <date>-2.json, -3, ...: earlier results are kept.
    for n in itertools.count(2):
        if not os.path.exists(path):
            break
        path = os.path.join(args.out, f"{results['date']}-{n}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print_table(results)
    print(f"\nbench: wrote {path}")


if __name__ == "__main__":
    main()
