"""Progress lines on stdout and TensorBoard scalars, written by process 0 only."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import jax


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
            print(" | ".join(parts), flush=True)
        return rates


class ScalarWriter:
    """TensorBoard event files and a metrics.jsonl (for plots) in `logdir`, on process 0 only."""

    def __init__(self, logdir: str):
        self._writer = None
        self._jsonl = os.path.join(logdir, "metrics.jsonl")
        if jax.process_index() == 0:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(logdir)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in scalars.items():
            self._writer.add_scalar(name, float(value), step)
        self._writer.flush()
        with open(self._jsonl, "a") as f:
            f.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
