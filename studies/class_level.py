"""What a ranker that knows only the class reaches on studies.own_data's bars.

Such a ranker puts the true match's class first (the N/C test items of that class, in random order)
for a fraction `accuracy` of the queries, and after it otherwise. Where a pair of modalities shares nothing but
the class (as the fixtures' sounds share with their images and captions: each sound is drawn apart from
them), no model does better than the perfect one (accuracy 1) but by the draw of the test items. Per
direction of each report this prints the chance that the perfect class-level ranker's median rank is
below the best baseline's: near or under one half, a baseline is already at the class level, and
"beats every baseline" there is a coin the network can only toss. Given sound_ceiling reports, it also
prints the chance that a class-level ranker with the sound tower's accuracy on the true labels stays
within 1.3x of the floor: how much room the sound directions have.

python -m studies.class_level studies/results/own_data-2026-12-03.json [more reports] \
    [--ceilings studies/results/sound_ceiling-2026-12-03.json ...]

Writes studies/results/class_level-<date>.json (a later run that day replaces it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from typing import Any

import numpy as np

from studies.own_data import FLOOR_FACTOR, RESULTS_DIR

TRIALS = 20_000


def class_level_medians(
    num_test: int, num_classes: int, accuracy: float = 1.0, trials: int = TRIALS, seed: int = 0
) -> np.ndarray:
    """Median ranks [trials] of the true match among num_test items of num_classes balanced classes,
    each trial one draw of every query's rank: uniform over 1..num_test/num_classes with probability
    `accuracy`, else uniform over the ranks after the class."""
    per_class = num_test // num_classes
    rng = np.random.default_rng(seed)
    inside = rng.integers(1, per_class + 1, size=(trials, num_test), dtype=np.int32)
    if accuracy < 1.0:
        outside = rng.integers(per_class + 1, num_test + 1, size=(trials, num_test), dtype=np.int32)
        inside = np.where(rng.random((trials, num_test)) < accuracy, inside, outside)
    return np.median(inside, axis=1)


def folder_chances(checks: dict[str, Any], medians: np.ndarray) -> dict[str, Any]:
    """Per direction of one folder's bars (studies.own_data.bars): the network's and the best
    baseline's median ranks and the chance that the perfect class-level ranker, whose median ranks on
    the folder's test items are `medians` [trials] (class_level_medians), is below the latter."""
    return {
        d: {
            "network": rank,
            "best_baseline": checks["best_baseline"][d],
            "class_level_below_baseline": float(np.mean(medians < checks["best_baseline"][d])),
        }
        for d, rank in checks["ranks"].items()
    }


def ceiling_chances(accuracy: float, num_test: int, num_classes: int) -> dict[str, float]:
    """The class-level ranker of the given accuracy: its mean median rank and the chance that the
    median is within 1.3x of the floor num_test / (2 num_classes)."""
    medians = class_level_medians(num_test, num_classes, accuracy)
    bar = FLOOR_FACTOR * num_test / (2 * num_classes)
    return {"accuracy": accuracy, "mean_median": float(medians.mean()),
            "within_floor": float(np.mean(medians <= bar))}  # fmt: skip


def _sizes(entry: dict[str, Any]) -> tuple[int, int]:
    """(test items, classes) of one kind's entry in an own_data report."""
    classes = round(1.0 / entry["checks"]["chance"])
    return entry["sizes"]["test_per_class"] * classes, classes


def _read(path: str, made_by: str) -> dict[str, Any]:
    """The report at path; SystemExit (one line) when it is missing or not one of made_by's."""
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as error:
        raise SystemExit(f"class_level: cannot read {path}: {error}") from None
    if not isinstance(report, dict) or not isinstance(report.get("kinds"), dict):
        raise SystemExit(f"class_level: {path} is not a report of {made_by}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", help="studies.own_data reports")
    parser.add_argument("--ceilings", nargs="*", default=[], help="studies.sound_ceiling reports")
    args = parser.parse_args()
    report: dict[str, Any] = {"date": datetime.date.today().isoformat(), "trials": TRIALS,
                              "folders": {}, "ceilings": {}}  # fmt: skip
    sizes: dict[str, tuple[int, int]] = {}
    perfect: dict[tuple[int, int], np.ndarray] = {}  # the perfect ranker's medians, one draw a size
    for path in args.reports:
        own = _read(path, "studies.own_data")
        for kind, entry in own["kinds"].items():
            if "checks" not in entry:
                continue
            sizes[kind] = _sizes(entry)
            name = f"{os.path.basename(path)[: -len('.json')]}:{kind}"
            if sizes[kind] not in perfect:
                perfect[sizes[kind]] = class_level_medians(*sizes[kind])
            report["folders"][name] = folder_chances(entry["checks"], perfect[sizes[kind]])
            for d, row in report["folders"][name].items():
                print(f"{name:40s} {d:13s} network {row['network']:6.2f}  best baseline "
                      f"{row['best_baseline']:6.2f}  P(class level below it) "
                      f"{row['class_level_below_baseline']:.2f}")  # fmt: skip
    if not report["folders"]:
        raise SystemExit("class_level: no folder in these reports has the bars of a finished run")
    for path in args.ceilings:
        ceilings = _read(path, "studies.sound_ceiling")
        for kind, entry in ceilings["kinds"].items():
            if kind not in sizes or "test_accuracy" not in entry:
                continue
            name = f"{os.path.basename(path)[: -len('.json')]}:{kind}"
            report["ceilings"][name] = ceiling_chances(entry["test_accuracy"], *sizes[kind])
            row = report["ceilings"][name]
            print(f"{name:40s} sound tower on the true labels {row['accuracy']:.3f}: class-level "
                  f"median {row['mean_median']:.2f}, P(within {FLOOR_FACTOR}x the floor) "
                  f"{row['within_floor']:.2f}")  # fmt: skip
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"class_level-{report['date']}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"class_level: wrote {path}")


if __name__ == "__main__":
    main()
