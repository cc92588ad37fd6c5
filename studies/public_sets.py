"""`python -m experiments.public_eval` on real-material fixtures in public set layouts: spoken class
names in the ESC-50 layout (zero-shot sound classification from text prompts; sound and text were never
paired in training) and in the Clotho layout (sound-caption retrieval), scored with runs trained by the
own-data recipe on the same fixture kind.

python -m studies.public_sets                       # digits and glyphs (runs the recipe if needed)
python -m studies.public_sets --kinds=digits --out=/tmp/own_data_study

Reuses <out>/<kind>/run when studies.own_data left one there (same --out), else runs the recipe.
Writes studies/results/public_sets-<date>.json and prints each public set's table.
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

from fixtures import FULL_SIZES, write_fixture
from fixtures.public_layouts import write_clotho_fixture, write_esc50_fixture
from studies.own_data import ROOT, run_recipe, write_report

# Full-size layouts: ESC-50's 5 folds with 4 voices (sources) per class in each, 2 takes a voice; Clotho
# with 5 clips a class. Voices, takes and noise are drawn apart from the training fixture's.
ESC50 = dict(sources_per_class=20, takes_per_source=2, folds=5, clip_seconds=5.0, seed=1)
CLOTHO = dict(clips_per_class=5, clip_seconds=5.0, seed=1)


def score(run_dir: str, name: str, folder: str, log: str) -> dict[str, Any]:
    """Runs `python -m experiments.public_eval --workdir=run_dir` alone; returns its JSON result."""
    args = [f"--workdir={run_dir}", f"--set={name}", f"--path={folder}"]
    with open(log, "w") as f:
        done = subprocess.run(
            [sys.executable, "-m", "experiments.public_eval", *args],
            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"public_sets: {name} failed, see {log}")
    with open(os.path.join(run_dir, "public_eval", f"{name}.md")) as f:
        print(f.read(), flush=True)
    with open(os.path.join(run_dir, "public_eval", f"{name}.json")) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default="digits,glyphs")
    parser.add_argument("--out", default="/tmp/own_data_study")
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
                print(f"public_sets: wrote {kind} {name} {counts} in "
                      f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
            results[name] = score(run_dir, name, folder, os.path.join(out, f"{name}.log"))
        report["kinds"][kind] = {"esc50_layout": ESC50, "clotho_layout": CLOTHO, **results}
    write_report("public_sets", report)


if __name__ == "__main__":
    main()
