"""Flags and start-up shared by the entry points: --config, --workdir, multi-host initialization."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import jax
from absl import app, flags, logging
from ml_collections import config_flags

CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/world.py", "Experiment config file (see experiments/configs/)."
)
WORKDIR = flags.DEFINE_string("workdir", "runs/world", "Directory for checkpoints and logs.")
DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Call jax.distributed.initialize() first (multi-host GPU/TPU). On TPU pods and SLURM the "
    "coordinator is found automatically; elsewhere pass the three flags below.",
)
COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes in the job.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in the job.")
CPU_COLLECTIVES = flags.DEFINE_bool(
    "cpu_collectives", False, "Use gloo collectives (several CPU processes on one machine)."
)


def initialize() -> None:
    """Quiets library logs and joins the multi-process job when --distributed is set."""
    # Library INFO and WARNING lines (orbax, TFDS) drown the progress lines; errors still show.
    logging.set_verbosity(logging.ERROR)
    if not DISTRIBUTED.value:
        return
    if CPU_COLLECTIVES.value:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {
        "coordinator_address": COORDINATOR.value,
        "num_processes": NUM_PROCESSES.value,
        "process_id": PROCESS_ID.value,
    }
    jax.distributed.initialize(**{k: v for k, v in kwargs.items() if v is not None})
    print(
        f"process {jax.process_index()}/{jax.process_count()}: {jax.local_device_count()} local of "
        f"{jax.device_count()} devices",
        flush=True,
    )


# What a user's config, data or workdir can get wrong: each is raised with a message saying what to
# change, so the entry points print that one line rather than a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError)
TRACEBACK_ENV = "SHR_TRACEBACK"


def run(main: Callable[[list[str]], None]) -> None:
    """app.run(main), printing "error: <message>" and exiting 1 on a USER_ERRORS exception
    (set SHR_TRACEBACK=1 to see the traceback instead)."""

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except USER_ERRORS as err:
            if os.environ.get(TRACEBACK_ENV):
                raise
            sys.exit(f"error: {err}")

    app.run(guarded)
