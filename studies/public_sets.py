"""`python -m experiments.benchmark` on real-material fixtures in public benchmark layouts: spoken class
names in the ESC-50 layout (zero-shot sound classification from text prompts; sound and text were never
paired in training) and in the Clotho layout (sound-caption retrieval), scored with runs trained by the
own-data recipe on the same fixture kind.

python -m benchmarks.public_benchmarks                       # digits and glyphs (runs the recipe if needed)
python -m benchmarks.public_benchmarks --kinds=digits --out=/tmp/own_data_bench

Reuses <out>/<kind>/run when benchmarks.own_data left one there (same --out), else runs the recipe.
Writes benchmarks/results/public_benchmarks-<date>.json and prints each benchmark's table.
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

from benchmarks.own_data import ROOT, run_recipe, write_report
from data_pipelines.fixtures import FULL_SIZES, write_fixture
from data_pipelines.fixtures.benchmark_layouts import write_clotho_fixture, write_esc50_fixture

# Full-size layouts: ESC-50's 5 folds with 4 voices (sources) per class in each, 2 takes a voice; Clotho
# with 5 clips a class. Voices, takes and noise are drawn apart from the training fixture's.
ESC50 = dict(sources_per_class=20, takes_per_source=2, folds=5, clip_seconds=5.0, seed=1)
CLOTHO = dict(clips_per_class=5, clip_seconds=5.0, seed=1)


def benchmark(run_dir: str, name: str, folder: str, log: str) -> dict[str, Any]:
    """Runs `python -m experiments.benchmark --workdir=run_dir` alone; returns its JSON result."""
    args = [f"--workdir={run_dir}", f"--benchmark={name}", f"--path={folder}"]
    with open(log, "w") as f:
        done = subprocess.run(
            [sys.executable, "-m", "experiments.benchmark", *args],
            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"public_benchmarks: {name} failed, see {log}")
    with open(os.path.join(run_dir, "benchmarks", f"{name}.md")) as f:
        print(f.read(), flush=True)
    with open(os.path.join(run_dir, "benchmarks", f"{name}.json")) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default="digits,glyphs")
    parser.add_argument("--out", default="/tmp/own_data_bench")
    args = parser.parse_args()
    report: dict[str, Any] = {"date": datetime.date.today().isoformat(), "kinds": {}}
    for kind in args.kinds.split(","):
        out = os.path.join(args.out, kind)
        run_dir = os.path.join(out, "run")
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            folder = os.path.join(out, "folder")
            write_fixture(kind, folder, seed=0, **FULL_SIZES[kind])
            run_recipe(folder, out, [])
        results = {}
        for name, writer, sizes in (
            ("esc50", write_esc50_fixture, ESC50),
            ("clotho", write_clotho_fixture, CLOTHO),
        ):
            folder = os.path.join(out, f"{name}_layout")
            if not os.path.isdir(folder):
                start = time.perf_counter()
                counts = writer(folder, kind, **sizes)
                print(f"public_benchmarks: wrote {kind} {name} {counts} in "
                      f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
            results[name] = benchmark(run_dir, name, folder, os.path.join(out, f"{name}.log"))
        report["kinds"][kind] = {"esc50_layout": ESC50, "clotho_layout": CLOTHO, **results}
    write_report("public_benchmarks", report)


if __name__ == "__main__":
    main()
