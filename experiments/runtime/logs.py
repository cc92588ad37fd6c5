"""What a run tells its user: absl log lines (progress: what, step/total, values, rate, ETA), TensorBoard
event files and metrics.jsonl, written by process 0 only.

Library code logs through absl. By default the project's INFO lines show and other libraries' (orbax,
TFDS) only from ERROR up, as their INFO and WARNING lines drown the progress lines; an explicit
--verbosity is honoured as given, for every library (-1: warnings and up; 0: INFO; 1: debug).
"""

from __future__ import annotations

import json
import logging as std_logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
from absl import logging
from etils import epath

from data_pipelines import paths
from experiments.runtime import event_files

# Source folders whose INFO lines show by default.
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PROJECT_DIRS = tuple(
    os.path.join(_PROJECT_ROOT, name) + os.sep
    for name in ("alignment", "data_pipelines", "experiments", "benchmarks", "studies")
)


class _ProjectInfoOnly(std_logging.Filter):
    """Passes errors from anywhere, and the project's own lines from INFO up."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.ERROR or record.pathname.startswith(_PROJECT_DIRS)


def setup(verbosity_given: bool) -> None:
    """Log INFO lines of the project only, unless the user chose a --verbosity (then all, as given)."""
    handler = logging.get_absl_handler()
    for old in [f for f in handler.filters if isinstance(f, _ProjectInfoOnly)]:
        handler.removeFilter(old)
    if not verbosity_given:
        logging.set_verbosity(logging.INFO)
        handler.addFilter(_ProjectInfoOnly())


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Prints `what step/total | values | rate | ETA` lines and measures throughput between calls."""

    def __init__(self, what: str, total: int, start: int = 0, examples_per_step: int = 0):
        self.what = what
        self.total = total
        self.examples_per_step = examples_per_step
        self._last_step = start
        self._last_time = time.perf_counter()
        self._first_time = self._last_time
        self._first_step = start

    def update(self, step: int, values: Mapping[str, float] | None = None) -> dict[str, float]:
        """Prints one line (process 0) and returns the rates measured since the previous call."""
        now = time.perf_counter()
        steps_per_s = (step - self._last_step) / max(now - self._last_time, 1e-9)
        overall = (step - self._first_step) / max(now - self._first_time, 1e-9)
        eta = (self.total - step) / overall if overall > 0 else 0.0
        self._last_step, self._last_time = step, now
        rates = {"steps_per_s": steps_per_s}
        parts = [f"{self.what} {step}/{self.total}"]
        if values:
            parts.append(" ".join(f"{k} {v:.4g}" for k, v in values.items()))
        if self.examples_per_step:
            rates["examples_per_s"] = steps_per_s * self.examples_per_step
            parts.append(f"{rates['examples_per_s']:.0f} ex/s")
        else:
            parts.append(f"{steps_per_s:.2f} it/s")
        parts.append(f"ETA {format_duration(eta)}")
        if jax.process_index() == 0:
            logging.info("%s", " | ".join(parts))
        return rates


class ScalarWriter:
    """TensorBoard event files and a metrics.jsonl (for plots) in `logdir`, on process 0 only.

    `logdir` is a local folder or a URI (gs://...; the event files then go through event_files). A run
    resumed at step s drops the metrics.jsonl rows after s (steps it repeats), so the file holds each
    step once.
    """

    def __init__(self, logdir: str, resumed_step: int = 0):
        self._writer = None
        self._jsonl = paths.as_path(logdir) / METRICS_FILE
        if jax.process_index() == 0:
            from tensorboardX import SummaryWriter

            event_files.register()
            _drop_rows_after(self._jsonl, resumed_step)
            self._writer = SummaryWriter(os.fspath(paths.as_path(logdir)))

    def write_config(self, config: Any, metrics: tuple[str, ...] = ()) -> None:
        """The run's config as text and as hyperparameters (TensorBoard's HPARAMS tab), the latter
        linked to the named scalars."""
        if self._writer is None:
            return
        from tensorboardX.summary import hparams

        self._writer.add_text("config", "```\n" + config.to_json_best_effort(indent=1) + "\n```")
        flat = _flatten(json.loads(config.to_json_best_effort()))
        for summary in hparams(flat, dict.fromkeys(metrics, 0.0)):
            self._writer.file_writer.add_summary(summary)
        self._writer.flush()

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), step)
        self._writer.flush()
        # On gs:// an append re-uploads the whole object; the file gains one short row per log step.
        with self._jsonl.open("a") as f:
            f.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


METRICS_FILE = "metrics.jsonl"


def _drop_rows_after(path: epath.Path, step: int) -> None:
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        path.write_text("".join(kept), encoding="utf-8")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists, None and infinities (a grad_clip of inf) become strings
    (hparams take finite scalars)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, str)) or (
            isinstance(value, float) and math.isfinite(value)
        ):
            flat[f"{prefix}{key}"] = value
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat
