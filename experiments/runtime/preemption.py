"""Preemption notices, turned into one step at which every process of the job saves and stops.

A TPU VM or a cloud GPU instance is sent SIGTERM some seconds before it is taken away; by default that
ends the process at once, losing the steps since the last checkpoint and any save in flight. Inside
`Watch`, the training loop asks `reached(step)` at each step boundary instead:

- One process: a SIGTERM handler sets a flag; reading it costs nothing (no device or host sync).
- Several processes (jax.distributed): stopping must be collective, or the processes that stop leave the
  others waiting in a collective forever. JAX's preemption service, started by
  jax.distributed.initialize, already catches SIGTERM on every host (a C handler) and, through the
  coordination service, agrees on the fastest process's next step; `reached_preemption_sync_point` is
  then true at that step on every process. Asking it costs a mutex, no collective, so it is asked at
  every step. A Python handler there would replace JAX's, so none is installed.
"""

from __future__ import annotations

import signal
import threading
import types
from typing import Any

import jax
from absl import logging
from jax.experimental import multihost_utils


class Preempted(Exception):
    """Raised once a preemption's checkpoint is saved: the process should end, with exit status 0, and
    be rerun (the entry points do so); a caller that trained on would work on an unfinished state."""

    def __init__(self, step: int, notice: str):
        super().__init__(f"preempted ({notice}) at step {step}")
        self.step = step
        self.notice = notice


class Watch:
    """Context manager over a training loop: `reached(step)` is True at the step to save and stop at."""

    def __init__(self, start_step: int):
        self._start_step = start_step
        # "signal": this process's SIGTERM flag; "sync": JAX's preemption sync point; "off": neither.
        self._mode = "sync" if jax.process_count() > 1 else "signal"
        self._signalled = False
        self._previous: Any = None
        self._installed = False
        self.notice = "preemption notice" if self._mode == "sync" else "SIGTERM"

    def __enter__(self) -> Watch:
        if self._mode == "sync":
            # Every process announces the step it starts from, so a notice that arrives before the
            # first step ends is synchronized to a step this loop reaches.
            self.reached(self._start_step)
        elif threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True
        else:
            # Python runs signal handlers in the main thread only; elsewhere SIGTERM keeps its action.
            self._mode = "off"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        if self._installed:
            # None: the previous handler was not set from Python (JAX's C one); the default is the
            # nearest Python can restore.
            previous = signal.SIG_DFL if self._previous is None else self._previous
            signal.signal(signal.SIGTERM, previous)
            self._installed = False

    def _on_sigterm(self, signum: int, frame: types.FrameType | None) -> None:
        del signum, frame
        self._signalled = True

    def reached(self, step: int) -> bool:
        """Whether to save at `step` (the number of steps done) and stop; every process gets the same
        answer at the same step. Call it at every step, with steps that only grow."""
        if self._mode == "signal":
            return self._signalled
        if self._mode == "off":
            return False
        try:
            return multihost_utils.reached_preemption_sync_point(step)
        except RuntimeError:
            # The preemption service is off (jax_enable_preemption_service=False): SIGTERM keeps its
            # default action, and a rerun resumes from the last checkpoint.
            logging.warning(
                "train: JAX's preemption service is off: a preemption will not save a checkpoint"
            )
            self._mode = "off"
            return False
