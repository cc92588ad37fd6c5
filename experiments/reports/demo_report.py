"""The demo's report: tables, training curves, the hidden-unit grid and the wall time of each stage."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

from experiments.evaluation.rows import Row
from experiments.reports import tables as report_tables

CURVES = ("loss", "kl_sound", "kl_text", "rank_img_snd", "rank_img_txt")


def plot_training_curves(run_dirs: Sequence[str], path: str) -> None:
    """One panel per loss term; one line per run (from each run's metrics.jsonl)."""
    figure = Figure(figsize=(4 * len(CURVES), 3.2))
    axes = figure.subplots(1, len(CURVES))
    for run_dir in run_dirs:
        rows = _metrics(run_dir)
        for ax, name in zip(axes, CURVES, strict=True):
            points = [(r["step"], r[name]) for r in rows if name in r]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, label=os.path.basename(run_dir))
    for ax, name in zip(axes, CURVES, strict=True):
        ax.set_title(name)
        ax.set_xlabel("step")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def _metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def write_report(
    workdir: str,
    rows: Sequence[Row],
    teacher_metrics: Mapping[str, float],
    stage_times: Mapping[str, float],
    run_dirs: Sequence[str],
) -> str:
    """Writes <workdir>/report.md, results.json, raw_probes.json, tables.md and PNGs from the evaluation
    suite's rows; returns the tables' markdown."""
    tables = report_tables.write_rows(rows, workdir)
    plot_training_curves(run_dirs, os.path.join(workdir, "training_curves.png"))
    lines = [
        "# See, Hear, and Read on the bundled world",
        "",
        "Median rank of the true match among 1,000 test items (mean over 5 chunks; lower is better;"
        " random is about 500).",
        "",
        tables,
        "",
        "![median ranks](median_ranks.png)",
        "",
        "## Teacher",
        "",
        " | ".join(f"{k} {v:.3f}" for k, v in teacher_metrics.items()),
        "",
        "## Training curves",
        "",
        "![training curves](training_curves.png)",
        "",
        "## Hidden units (fc7, one grid per run)",
        "",
        *[
            f"![units {os.path.basename(d)}]({os.path.relpath(p, workdir)})"
            for d in run_dirs
            if os.path.isfile(p := os.path.join(d, "eval", "units.png"))
        ],
        "",
        "## Wall time per stage",
        "",
        "| stage | seconds |",
        "|---|---|",
        *[f"| {name} | {seconds:.0f} |" for name, seconds in stage_times.items()],
        "",
    ]
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    return tables
