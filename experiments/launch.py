"""Flags and start-up shared by the entry points: --config, --workdir, multi-host initialization."""

from __future__ import annotations

import jax
from absl import flags, logging
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
