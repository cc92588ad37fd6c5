"""The paper's tables as markdown, the median-rank plot, and results.json, from the evaluation suite's rows.

write_rows(rows, out_dir) collects the rows into one entry per method (results.json) and the raw-input
probes (raw_probes.json). An entry is a method's merged fields (evaluation/retrieval.py, baselines.py,
transfer.py, units.py): "retrieval" ({"query->gallery": {"median_rank", "recall@k"...}}) is required;
"chunk", "num_pairs", "transfer", "units" and "versus" (a trained row against each baseline,
evaluation/versus.py) are used when present. Rows are listed in the paper's order (Random, Linear Reg.,
CCA, Normalized CCA, Model Transfer, Ranking, Both), any other names after them in the order given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from data_pipelines import paths
from experiments.evaluation import versus
from experiments.evaluation.raw_probes import RAW_INPUT
from experiments.evaluation.retrieval import (
    DIRECTIONS,
    PAIRED_DIRECTIONS,
    RECALL_KS,
    UNPAIRED_DIRECTIONS,
)
from experiments.evaluation.rows import RAW_PROBES, RESULTS, Row

ROW_ORDER = ("Random", "Linear Reg.", "CCA", "Normalized CCA", "Model Transfer", "Ranking", "Both")
SHORT = {"image": "IMG", "sound": "SND", "text": "TXT"}
TABLES_FILE = "tables.md"
RESULTS_FILE = "results.json"
RAW_PROBES_FILE = "raw_probes.json"
PLOT_FILE = "median_ranks.png"

# The paper's numbers (median rank on chunks of 1000 test pairs; random about 500).
PAPER_TABLE1_BOTH = {
    "image->sound": 47.5,
    "sound->image": 49.5,
    "image->text": 5.8,
    "text->image": 6.0,
}
PAPER_TABLE2 = {
    "Random": (500.0, 500.0),
    "Linear Reg.": (315.0, 309.0),
    "Model Transfer": (140.5, 142.0),
    "Ranking": (190.0, 189.5),
    "Both": (135.0, 140.5),
}
# Both losses, 42 categories, top-1 % (rows: trained on; columns: tested on IMG, SND, TXT).
PAPER_TABLE3_BOTH = {
    "image": (32.0, 5.8, 33.8),
    "sound": (12.8, 9.0, 15.2),
    "text": (22.6, 6.2, 40.3),
}


def ordered_rows(results_by_row: Mapping[str, Any]) -> list[str]:
    """Row names in the paper's order, then the others as given."""
    known = [name for name in ROW_ORDER if name in results_by_row]
    return known + [name for name in results_by_row if name not in ROW_ORDER]


def _key(direction: tuple[str, str]) -> str:
    return f"{direction[0]}->{direction[1]}"


def _label(direction: tuple[str, str]) -> str:
    return f"{SHORT[direction[0]]}->{SHORT[direction[1]]}"


def _number(value: Any, digits: int = 1) -> str:
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _median(row: Mapping[str, Any], direction: tuple[str, str]) -> float | None:
    return row["retrieval"].get(_key(direction), {}).get("median_rank")


def _protocol(results_by_row: Mapping[str, Any], names: Sequence[str]) -> str:
    chunks = {(r.get("chunk"), r.get("num_pairs")) for r in map(results_by_row.get, names) if r}
    parts = []
    for chunk, pairs in sorted(chunks, key=str):
        if chunk and pairs:
            parts.append(
                f"{pairs // chunk} chunk(s) of {chunk} test pairs out of {pairs} "
                f"(random about {(chunk + 1) / 2:.0f})"
            )
    return "; ".join(parts) or "protocol not recorded"


def _retrieval_section(
    title: str,
    results_by_row: Mapping[str, Any],
    names: Sequence[str],
    directions: Sequence[tuple[str, str]],
    paper: Mapping[str, Sequence[float]] | None = None,
) -> list[str]:
    header = ["Method"] + [_label(d) for d in directions]
    if paper is not None:
        header += [f"paper {_label(d)}" for d in directions]
    rows = []
    for name in names:
        row = [name] + [_number(_median(results_by_row[name], d)) for d in directions]
        if paper is not None:
            row += [_number(v) for v in paper.get(name, (None,) * len(directions))]
        rows.append(row)
    return [f"## {title}", "", *_table(header, rows), ""]


def _transfer_section(results_by_row: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    lines = [
        "## Table 3: zero-shot classifier transfer (top-1 %, rows: trained on, columns: tested on)",
        "",
    ]
    found = False
    for name in names:
        info = results_by_row[name].get("transfer")
        if not info:
            continue
        found = True
        table = info["table"]
        modalities = [m for m in table if m not in ("chance", "majority")]
        header = ["train \\ test"] + [SHORT.get(m, m) for m in modalities]
        rows = [
            [SHORT.get(source, source)] + [_number(100 * table[source][m]) for m in modalities]
            for source in (*modalities, "chance", "majority")
            if source in table
        ]
        lines += [
            f"### {name} (layer {info.get('layer', '?')}, {info.get('num_classes', '?')} classes, "
            f"trained on the {info.get('train_items', '?')})",
            "",
            *_table(header, rows),
            "",
        ]
    if not found:
        return lines + ["No labeled test items: classifier transfer was not measured.", ""]
    paper_rows = [
        [SHORT[m]] + [_number(v) for v in values] for m, values in PAPER_TABLE3_BOTH.items()
    ]
    return lines + [
        "Paper, Both, 42 categories (chance 2.3%):",
        "",
        *_table(["train \\ test", "IMG", "SND", "TXT"], paper_rows),
        "",
    ]


def _raw_probe_section(
    raw_probes: Mapping[str, Any] | None, results_by_row: Mapping[str, Any], names: Sequence[str]
) -> list[str]:
    """Raw-input probes beside the same probe on each trained row (the transfer matrix's diagonal)."""
    if not raw_probes:
        return []
    trained = [n for n in names if results_by_row[n].get("transfer")]
    header = ["modality", "raw input", *trained, "chance"]
    rows = []
    for m, accuracy in raw_probes["accuracy"].items():
        diagonal = [results_by_row[n]["transfer"]["table"][m][m] for n in trained]
        cells = [100 * accuracy, *(100 * a for a in diagonal), 100 * raw_probes["chance"]]
        rows.append([SHORT.get(m, m), *(_number(c) for c in cells)])
    return [
        "## Linear probes: raw input against the trained network (top-1 %, same modality)",
        "",
        *_table(header, rows),
        "",
        "Raw input: pixels, the log spectrogram and a bag of words, standardized, under the classifier "
        "that scores the networks (trained on the validation rows, tested on the test rows).",
        "",
    ]


def _recall_section(results_by_row: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    ks = " / ".join(f"R@{k}" for k in RECALL_KS)
    header = ["Method"] + [_label(d) for d in DIRECTIONS]
    rows = []
    for name in names:
        retrieval = results_by_row[name]["retrieval"]
        cells = []
        for d in DIRECTIONS:
            scores = retrieval.get(_key(d), {})
            cells.append(
                " / ".join(_number(100 * scores.get(f"recall@{k}", math.nan), 0) for k in RECALL_KS)
            )
        rows.append([name, *cells])
    return [f"## Recall@k ({ks}, %, higher is better)", "", *_table(header, rows), ""]


def _units_section(results_by_row: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    lines = []
    for name in names:
        dead = results_by_row[name].get("dead_units")
        if dead is not None:
            lines.append(
                f"- {name}: {100 * dead:.1f}% of {results_by_row[name].get('layer', '?')} units are "
                "never active on the test set"
            )
        info = results_by_row[name].get("units")
        if not info:
            continue
        top = ", ".join(f"{u['unit']} ({u['concept']})" for u in info["top_units"])
        lines.append(
            f"- {name}: {100 * info['selective_fraction']:.1f}% of {info['layer']} units are "
            f"concept-selective (shuffled labels: {100 * info['shuffled_fraction']:.1f}%); "
            f"top units {top}; grid {info['grid']}"
        )
    if not lines:
        return []
    return ["## Hidden units (top-10 items of every modality agree on one concept)", "", *lines, ""]


def _versus_section(results_by_row: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    header = ["Trained - baseline"] + [_label(d) for d in DIRECTIONS]
    rows = []
    for name in names:
        for baseline, cells in results_by_row[name].get("versus", {}).items():
            row = [f"{name} - {baseline}"]
            for direction in DIRECTIONS:
                cell = cells.get(_key(direction))
                row.append(
                    "-"
                    if cell is None
                    else f"{cell['difference']:+.1f} ({cell['low']:+.1f}, {cell['high']:+.1f})"
                )
            rows.append(row)
    if not rows:
        return []
    return [
        f"## Difference in median rank, trained minus baseline ({100 * versus.LEVEL:.0f}% paired "
        "bootstrap interval over the test items)",
        "",
        "Below 0 the trained row ranks better. An interval that holds 0 cannot tell the two apart on "
        "this draw of test items.",
        "",
        *_table(header, rows),
        "",
    ]


def _baseline_notes(results_by_row: Mapping[str, Any]) -> list[str]:
    """How the baseline rows were made, from the first row that records it."""
    lines = []
    if "Random" in results_by_row:
        lines.append("Random ranks Gaussian embeddings drawn with a fixed seed.")
    for name in ("Linear Reg.", "CCA", "Normalized CCA"):
        row = results_by_row.get(name, {})
        if "features" in row and "train_pairs" in row:
            features = "; ".join(f"{SHORT.get(m, m)}: {d}" for m, d in row["features"].items())
            pairs = row["train_pairs"]
            lines.append(
                f"Linear baselines fit on {pairs.get('image_sound', '?')} image+sound and "
                f"{pairs.get('image_text', '?')} image+text training pairs (SND<->TXT through the "
                f"image bridge); features: {features}."
            )
            break
    return [*lines, ""] if lines else []


def tables_markdown(
    results_by_row: Mapping[str, Any], raw_probes: Mapping[str, Any] | None = None
) -> str:
    """The markdown of write_tables (nothing written)."""
    names = ordered_rows(results_by_row)
    paper_both = " / ".join(_number(PAPER_TABLE1_BOTH[_key(d)]) for d in PAIRED_DIRECTIONS)
    lines = [
        "# See, Hear, and Read: results",
        "",
        f"Median rank of the true match, lower is better; {_protocol(results_by_row, names)}.",
        "",
        *_retrieval_section(
            "Table 1: cross-modal retrieval (median rank)", results_by_row, names, PAIRED_DIRECTIONS
        ),
        *_baseline_notes(results_by_row),
        f"Paper (chunks of 1000, random 500): Both {paper_both}; Linear Reg. and CCA baselines "
        "295-346 (IMG/SND) and 12.8-18.0 (IMG/TXT).",
        "",
        *_retrieval_section(
            "Table 2: never-paired sound and text (median rank)",
            results_by_row,
            names,
            UNPAIRED_DIRECTIONS,
            PAPER_TABLE2,
        ),
        *_transfer_section(results_by_row, names),
        *_raw_probe_section(raw_probes, results_by_row, names),
        *_versus_section(results_by_row, names),
        *_recall_section(results_by_row, names),
        *_units_section(results_by_row, names),
    ]
    return "\n".join(lines)


def write_tables(
    results_by_row: Mapping[str, Any],
    out_dir: str,
    raw_probes: Mapping[str, Any] | None = None,
) -> str:
    """Writes <out_dir>/tables.md (Tables 1-3, raw-input probes if given, recall@k, hidden units) and
    returns its markdown. raw_probes is the dict of experiments.raw_probe.raw_input_probes. out_dir is
    a local folder or a URI (gs://...), as for every writer here."""
    markdown = tables_markdown(results_by_row, raw_probes)
    directory = paths.as_path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / TABLES_FILE).write_text(markdown, encoding="utf-8")
    return markdown


def plot_median_ranks(results_by_row: Mapping[str, Any], path: str) -> None:
    """Grouped bars of the median rank per direction (log scale), one colour per row, saved as PNG."""
    names = ordered_rows(results_by_row)
    figure = Figure(figsize=(9.0, 4.0))
    ax = figure.add_subplot()
    width = 0.8 / max(len(names), 1)
    positions = np.arange(len(DIRECTIONS))
    for i, name in enumerate(names):
        values = [_median(results_by_row[name], d) for d in DIRECTIONS]
        heights = [v if v is not None and math.isfinite(v) else np.nan for v in values]
        ax.bar(positions + (i - (len(names) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(positions, [_label(d) for d in DIRECTIONS])
    ax.set_yscale("log")
    # Plain numbers on the log axis: ranks often span less than a decade.
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel("median rank (lower is better)")
    ax.legend(fontsize=7, ncols=2)
    figure.tight_layout()
    with paths.as_path(path).open("wb") as f:
        figure.savefig(f, format="png", dpi=100)


def json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(
    results_by_row: Mapping[str, Any],
    out_dir: str,
    raw_probes: Mapping[str, Any] | None = None,
) -> str:
    """Writes results.json (and raw_probes.json if given), tables.md and median_ranks.png into out_dir;
    returns the markdown."""
    directory = paths.as_path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written = {RESULTS_FILE: results_by_row, RAW_PROBES_FILE: raw_probes}
    for name, value in written.items():
        if value is not None:
            (directory / name).write_text(json.dumps(json_safe(value), indent=1), encoding="utf-8")
    plot_median_ranks(results_by_row, str(directory / PLOT_FILE))
    return write_tables(results_by_row, out_dir, raw_probes)


def write_rows(rows: Sequence[Row], out_dir: str) -> str:
    """write_report of the evaluation suite's rows: RESULTS rows merged into one entry per method (in
    the order they first appear), the RAW_PROBES entry; other tables' rows are not written."""
    results: dict[str, dict[str, Any]] = {}
    probes: dict[str, Any] | None = None
    for row in rows:
        if row.table == RESULTS:
            results.setdefault(row.name, {}).update(row.fields)
        elif row.table == RAW_PROBES and row.name == RAW_INPUT:
            probes = dict(row.fields)
    return write_report(results, out_dir, probes)
