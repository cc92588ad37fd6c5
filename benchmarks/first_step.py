"""Time to the first finished training step of a fresh process, with JAX's persistent compilation cache
cold (an empty folder) and warm (the same folder again): what the cache saves each rerun, resumed run
and evaluation. Each start is its own process, timed from just before it is launched, so interpreter
start-up and imports count as they do for a user.

python -m benchmarks.first_step --cache_dir=DIR   # one worker: prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

# The benchmark measures the project's own cache settings, not a folder or threshold the user exported.
_USER_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")


def measure(config_name: str = "world", timeout_s: float = 900) -> dict[str, Any]:
    """{"cold_s", "warm_s", "ratio" (cold / warm), ...}: seconds from launching a process to its first
    finished train step (synthetic batch, config.batch_size rows per pair stream)."""
    with tempfile.TemporaryDirectory(prefix="shr-first-step-") as cache:
        cold = _launch(config_name, cache, timeout_s)
        entries = len([name for name in os.listdir(cache) if name.endswith("-cache")])
        warm = _launch(config_name, cache, timeout_s)
    return {
        "config": config_name,
        "cold_s": cold["first_step_s"],
        "warm_s": warm["first_step_s"],
        "ratio": cold["first_step_s"] / warm["first_step_s"],
        "cold": cold,
        "warm": warm,
        "cache_entries": entries,
    }


def _launch(config_name: str, cache: str, timeout_s: float) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in _USER_ENV}
    command = [sys.executable, "-m", "benchmarks.first_step", f"--config={config_name}",
               f"--cache_dir={cache}"]  # fmt: skip
    launched = time.time()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode:
        raise RuntimeError(f"first_step worker failed:\n{done.stderr[-2000:]}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    # Wall-clock marks of the worker against the launch, on the same machine's clock.
    return {f"{name}_s": at - launched for name, at in marks.items()}


def _worker(config_name: str, cache_dir: str) -> dict[str, float]:
    """Wall-clock times (time.time()) at which the imports, the state and the first step were done."""
    import jax

    from alignment import parallel
    from alignment.models import create_model
    from benchmarks import common
    from experiments.runtime import compilation_cache
    from experiments.runtime.optimizer import make_optimizer

    imported = time.time()
    compilation_cache.setup(cache_dir)  # what every entry point's launch.initialize() does
    config = common.load_config(config_name)
    mesh = parallel.make_mesh()
    model = create_model(config.model)
    optimizer = make_optimizer(config.optimizer, config.total_steps)
    host_batch = common.synthetic_batch(config, config.batch_size)
    state = parallel.create_train_state(
        model, optimizer, jax.random.PRNGKey(config.seed), host_batch, mesh
    )
    jax.block_until_ready(state)
    initialized = time.time()
    step = parallel.make_train_step(model, optimizer, config.loss, mesh)
    state, metrics = step(state, parallel.shard_batch(host_batch, mesh))
    jax.block_until_ready((state, metrics))
    return {"import": imported, "init": initialized, "first_step": time.time()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="world")
    parser.add_argument("--cache_dir", required=True)
    args = parser.parse_args()
    print(json.dumps(_worker(args.config, args.cache_dir)))


if __name__ == "__main__":
    main()
