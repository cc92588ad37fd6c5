"""A public set's result as markdown and JSON: <workdir>/public_eval/NAME.{json,md}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from data_pipelines import paths
from experiments.reports.tables import json_safe

PUBLIC_EVAL_SUBDIR = "public_eval"


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def classification_markdown(result: Mapping[str, Any]) -> list[str]:
    zero, probe = result["zero_shot"], result["linear_probe"]
    folds = sorted(zero["per_fold"], key=int)
    lines = [
        f"Sound classification, {result['num_clips']} clips, {result['num_classes']} classes "
        f"(chance {_percent(result['chance'])}%), top-1 %:",
        "",
        "| method | all clips | mean over folds | " + " | ".join(f"fold {f}" for f in folds) + " |",
        "|---|---|---|" + "---|" * len(folds),
    ]
    for name, scores in (
        ("zero-shot (text prompts)", zero),
        ("linear probe (leave one fold out)", probe),
    ):
        per_fold = " | ".join(_percent(scores["per_fold"][f]) for f in folds)
        lines.append(
            f"| {name} | {_percent(scores['accuracy'])} | {_percent(scores['fold_mean'])} | {per_fold} |"
        )
    vocabulary = result["vocabulary"]
    lines += [
        "",
        f"Prompts: {len(result['templates'])} templates ({', '.join(repr(t) for t in result['templates'])}),"
        " their text embeddings averaged per class; sound windows pooled by "
        f"{result['pooling']} ({result['windows']} windows).",
    ]
    if vocabulary["missing_words"]:
        lost = "; ".join(f"{k}: {', '.join(v)}" for k, v in vocabulary["missing_words"].items())
        lines.append(f"Words without a vector (dropped): {lost}.")
    if vocabulary["classes_without_known_words"]:
        lines.append(
            "Classes with no known word (their prompts cannot name them): "
            + ", ".join(vocabulary["classes_without_known_words"])
            + "."
        )
    return lines


def retrieval_markdown(result: Mapping[str, Any]) -> list[str]:
    metrics = result["retrieval"]
    lines = [
        f"Caption retrieval, {result['num_items']} items, {result['num_captions']} captions "
        "(every caption a query; item->text counts an item's best-ranked caption):",
        "",
        "| direction | R@1 | R@5 | R@10 | median rank | mAP@10 |",
        "|---|---|---|---|---|---|",
    ]
    for direction, m in metrics.items():
        lines.append(
            f"| {direction} | {_percent(m['recall@1'])} | {_percent(m['recall@5'])} | "
            f"{_percent(m['recall@10'])} | {m['median_rank']:.1f} | {m['map@10']:.3f} |"
        )
    if result["captions_without_known_words"]:
        lines.append(
            f"\n{result['captions_without_known_words']} captions had no word with a vector "
            "(embedded as zeros)."
        )
    return lines


def public_markdown(result: Mapping[str, Any]) -> str:
    """The markdown of a sound_classification or caption_retrieval result."""
    lines = [f"## {result['set']} (checkpoint step {result['step']})", ""]
    if "zero_shot" in result:
        lines += classification_markdown(result)
    else:
        lines += retrieval_markdown(result)
    skipped, unreadable = result["skipped"], result["unreadable"]
    lines.append("")
    lines.append(
        f"Rows skipped by the loader: {skipped['total']} "
        f"({', '.join(f'{k}={v}' for k, v in sorted(skipped['counts'].items())) or 'none'}); "
        f"files that could not be read: {unreadable['count']}."
    )
    return "\n".join(lines) + "\n"


def write_public_result(result: Mapping[str, Any], workdir: str) -> tuple[str, str]:
    """Writes <workdir>/public_eval/NAME.json and NAME.md (workdir local or a URI); returns (json path,
    markdown)."""
    directory = paths.as_path(workdir) / PUBLIC_EVAL_SUBDIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result['set']}.json"
    path.write_text(json.dumps(json_safe(result), indent=1), encoding="utf-8")
    markdown = public_markdown(result)
    (directory / f"{result['set']}.md").write_text(markdown, encoding="utf-8")
    return str(path), markdown
