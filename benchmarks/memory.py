"""Memory: the peak host RSS of the benchmark process and XLA's memory analysis of a compiled step."""

from __future__ import annotations

from typing import Any

from benchmarks import common


def measure(train_results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS so far (after every in-process benchmark) and, per config, the compiled train step's
    argument / output / temporary bytes (already measured by train_step.measure)."""
    result: dict[str, Any] = {"peak_rss_bytes": common.peak_rss_bytes()}
    for name, train in train_results.items():
        result[f"{name}_step"] = train.get("memory", {})
    return result
