"""The flags every entry point shares (--config, --workdir, --distributed) and their start-up: config
resolution (a name, a path, or the config a workdir's run saved), logging, JAX's persistent compilation
cache, multi-host initialization and the one-line error guard. The only module outside the entry points
that defines flags."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import configs
from experiments.runtime import compilation_cache, logs, preemption, run_config

CONFIG = config_flags.DEFINE_config_file(
    "config",
    configs.config_path("world"),
    "Experiment config: a name (" + ", ".join(configs.NAMES) + ") or a config file path. Without "
    "it, the config the run in --workdir saved (<workdir>/config.json), else world. Relative paths "
    "in a config (data.data_dir defaults to data/tfds) are taken from the current directory.",
)
WORKDIR = flags.DEFINE_string(
    "workdir",
    "runs/world",
    "Directory for checkpoints, logs and evaluation output (relative paths are taken from the "
    "current directory).",
)
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

# What a user's config, data or workdir can get wrong: each is raised with a message saying what to
# change, so the entry points print that one line rather than a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, FloatingPointError)
TRACEBACK_ENV = "SHR_TRACEBACK"


def require(*holders: flags.FlagHolder) -> None:
    """A one-line usage error for the first of these flags that was not given. Entry points check their
    required flags here, not with absl's required=True: that validator is global, so it would refuse
    every other entry point parsed in the same process (tests run several)."""
    for holder in holders:
        if holder.value is None:
            raise app.UsageError(f"--{holder.name} is required")


def initialize() -> None:
    """Sets up logging (--verbosity honoured) and JAX's persistent compilation cache
    (config.compilation_cache_dir), then joins the multi-process job when --distributed: all before
    anything compiles or touches a device."""
    logs.setup(verbosity_given=flags.FLAGS["verbosity"].present > 0)
    compilation_cache.setup(config().compilation_cache_dir)
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
    logging.info(
        "process %d/%d: %d local of %d devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


@functools.cache
def config() -> Any:
    """This invocation's config: --config (a name or a file) with its overrides; without --config, the
    config the run in --workdir saved, with the --config.* overrides given on top; else world.

    Resolved once per process (flags do not change after parsing): initialize() reads it first."""
    flag = flags.FLAGS["config"]
    overrides = config_flags.get_override_values(flag)
    if not flag.present and run_config.has_saved(WORKDIR.value):
        saved = run_config.load(WORKDIR.value, overrides)
        logging.info(
            "config: %s (saved by the run in %s)", saved.source or "its saved values", WORKDIR.value
        )
        return saved.config
    return CONFIG.value


def config_file() -> str | None:
    """The config file this invocation reads (what run_config.save records beside a run)."""
    flag = flags.FLAGS["config"]
    if not flag.present and run_config.has_saved(WORKDIR.value):
        return run_config.saved_source(WORKDIR.value)
    return config_flags.get_config_filename(flag)


def run(main: Callable[[list[str]], None]) -> None:
    """app.run(main) with config names resolved, printing "error: <message>" and exiting 1 on a
    USER_ERRORS exception (set SHR_TRACEBACK=1 to see the traceback instead), and exiting 0 once a
    preempted run has saved (the rerun resumes it)."""

    def guarded(argv: list[str]) -> None:
        try:
            main(argv)
        except preemption.Preempted:
            # The trainer logged the step it saved; whatever came after training in `main` waits for
            # the rerun.
            sys.exit(0)
        except USER_ERRORS as err:
            if os.environ.get(TRACEBACK_ENV):
                raise
            sys.exit(f"error: {err}")

    app.run(guarded, argv=_resolve_config_names(sys.argv))


def _resolve_config_names(argv: list[str]) -> list[str]:
    """`--config=world` (or `--config world`) -> the packaged world.py's path."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            out[i] = "--config=" + configs.config_path(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(out):
            out[i + 1] = configs.config_path(out[i + 1])
    return out
