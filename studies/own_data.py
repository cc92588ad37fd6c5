"""The README's own-data recipe on full-size real-material fixtures: writes each fixture, runs the four
commands exactly as the README gives them, and prints the tables against the bars of a useful run.

python -m studies.own_data                             # every kind: about 4-7 minutes each
python -m studies.own_data --kinds=glyphs --no_validation_file --out=/tmp/own
python -m studies.own_data --write_only --out=/tmp/own  # only the fixture folders
python -m studies.own_data --kinds=countries --tag=clip3s -- --config.data.audio.clip_seconds=3 \
    --config.data.audio.time_steps=188                     # the recipe with other settings

Writes <out>/<kind>/ (fixture, data set, run) and studies/results/own_data-<date>.json (with
--seed=N > 0: own_data-seedN-<date>.json; with --tag=T: own_data-T[-seedN]-<date>.json; the report
names the seed and any overrides and keeps every method's median ranks; kinds run separately on one
day with the same seed and overrides are gathered in one report, and a run whose overrides differ
from those of today's report of its name stops before it starts). Bars (reported, never asserted):
the best trained objective beats linear regression, CCA and normalized CCA in all six directions and
is within 1.3x of the class-level floor N / (2C) (N test items, C balanced classes: a model that
knows only the class ranks the true match about there), with the difference from each direction's
best baseline with its paired bootstrap interval and verdict ("wins", "loses", or "within" the draw
of the test items; evaluation/versus.py); classifier transfer far above chance in every cell; the
whole recipe under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from typing import Any

from fixtures import FULL_SIZES, KINDS, write_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "studies", "results")
CONFIG = "experiments/configs/own_data.py"
COMMANDS = ("build_data", "train_teacher", "train", "evaluate")
BASELINES = ("Linear Reg.", "CCA", "Normalized CCA")
TRAINED = ("Model Transfer", "Ranking", "Both")
FLOOR_FACTOR = 1.3
MODALITIES = ("image", "sound", "text")


def run_recipe(folder: str, out: str, overrides: list[str]) -> dict[str, float]:
    """Runs the README's four commands on `folder`; returns the seconds of each."""
    data = [f"--config={CONFIG}", f"--config.data.source={folder}",
            f"--config.data.data_dir={os.path.join(out, 'tfds')}", *overrides]  # fmt: skip
    seconds = {}
    for command in COMMANDS:
        flags = (
            data if command == "build_data" else [*data, f"--workdir={os.path.join(out, 'run')}"]
        )
        start = time.perf_counter()
        log = os.path.join(out, f"{command}.log")
        with open(log, "w") as f:
            done = subprocess.run(
                [sys.executable, "-m", f"experiments.{command}", *flags],
                cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        seconds[command] = time.perf_counter() - start
        print(f"own_data: {command} {seconds[command]:.0f} s (log {log})", flush=True)
        if done.returncode:
            raise SystemExit(f"own_data: {command} failed, see {log}")
    return seconds


def _todays(name: str, report: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(path, today's report of this name if there is one)."""
    path = os.path.join(RESULTS_DIR, f"{name}-{report['date']}.json")
    if not os.path.exists(path):
        return path, None
    with open(path) as f:
        return path, json.load(f)


def _same_run(earlier: dict[str, Any], report: dict[str, Any]) -> bool:
    return all(earlier.get(key) == report.get(key) for key in ("seed", "overrides"))


def check_report_name(name: str, report: dict[str, Any]) -> None:
    """SystemExit (one line, before anything runs) when today's report of this name holds runs of
    other overrides, which this run's report would replace."""
    path, earlier = _todays(name, report)
    if earlier is not None and not _same_run(earlier, report):
        raise SystemExit(
            f"own_data: {path} holds runs with other overrides; name this one with --tag"
        )


def write_report(name: str, report: dict[str, Any]) -> str:
    """Writes studies/results/<name>-<report["date"]>.json; returns its path (also printed).

    A report of the same day, seed and overrides keeps the kinds this run did not measure, so kinds
    run one at a time add up to one report.
    """
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path, earlier = _todays(name, report)
    if earlier is not None and _same_run(earlier, report):
        report = {**report, "kinds": {**earlier.get("kinds", {}), **report["kinds"]}}
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"{name}: wrote {path}")
    return path


def median_ranks(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Every method's median rank per direction: the tables of results.json, kept in the report."""
    return {
        method: {d: r["median_rank"] for d, r in entry["retrieval"].items()}
        for method, entry in results.items()
    }


def bars(results: dict[str, Any], num_test: int, num_classes: int) -> dict[str, Any]:
    """The checks of the module docstring on results.json."""
    floor = num_test / (2 * num_classes)
    trained = [name for name in TRAINED if name in results]
    best = min(trained, key=lambda n: sum(
        r["median_rank"] for r in results[n]["retrieval"].values()))  # fmt: skip
    ranks = {d: r["median_rank"] for d, r in results[best]["retrieval"].items()}
    present = [b for b in BASELINES if b in results]
    baseline = {d: min(results[b]["retrieval"][d]["median_rank"] for b in present) for d in ranks}
    cells = results[best]["transfer"]["table"] if results[best].get("transfer") else None
    # The verdict of the paired bootstrap against each direction's best baseline (evaluation/versus.py).
    versus = results[best].get("versus", {})
    draw = {}
    for d in ranks:
        first = next(b for b in present if results[b]["retrieval"][d]["median_rank"] == baseline[d])
        if first in versus:
            draw[d] = {"baseline": first, **versus[first][d]}
    return {
        "best": best,
        "floor": floor,
        "ranks": ranks,
        "best_baseline": baseline,
        "beats_baselines": all(ranks[d] < baseline[d] for d in ranks),
        "versus_best_baseline": draw or None,
        "within_floor": all(ranks[d] <= FLOOR_FACTOR * floor for d in ranks),
        "transfer_min_cell": min(cells[a][b] for a in MODALITIES for b in MODALITIES)
        if cells
        else None,
        "chance": 1.0 / num_classes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", default="/tmp/own_data_study")
    parser.add_argument("--no_validation_file", action="store_true",
                        help="write no validation.jsonl: the recipe holds out train rows")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the fixture's seed")
    parser.add_argument("--write_only", action="store_true",
                        help="only write the fixture folders (<out>/<kind>/folder)")  # fmt: skip
    parser.add_argument("--tag", default="",
                        help="names the report own_data-<tag>[-seedN]-<date>.json")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="extra --config.X=Y flags for every command")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "seed": args.seed,
        "overrides": args.overrides,
        "kinds": {},
    }
    # Another seed is another fixture: its report sits beside the seed-0 one instead of replacing it.
    name = "-".join(["own_data", *([args.tag] if args.tag else []),
                     *([f"seed{args.seed}"] if args.seed else [])])  # fmt: skip
    if not args.write_only:
        check_report_name(name, report)
    for kind in args.kinds.split(","):
        out = os.path.join(args.out, kind)
        folder = os.path.join(out, "folder")
        sizes = dict(FULL_SIZES[kind])
        if args.no_validation_file:
            sizes["validation_per_class"] = 0
        start = time.perf_counter()
        counts = write_fixture(kind, folder, seed=args.seed, **sizes)
        print(f"own_data: wrote {kind} {counts['rows']} in {time.perf_counter() - start:.0f} s")
        if args.write_only:
            continue
        seconds = run_recipe(folder, out, args.overrides)
        with open(os.path.join(out, "run", "eval", "results.json")) as f:
            results = json.load(f)
        with open(os.path.join(out, "run", "eval", "tables.md")) as f:
            print(f.read())
        checks = bars(results, counts["rows"]["test"], counts["classes"])
        checks["recipe_seconds"] = sum(seconds.values())
        print(f"own_data: {kind}: {json.dumps(checks, indent=1)}", flush=True)
        report["kinds"][kind] = {
            "sizes": sizes,
            "seconds": seconds,
            "checks": checks,
            "median_ranks": median_ranks(results),
        }
    if args.write_only:
        return
    write_report(name, report)


if __name__ == "__main__":
    main()
