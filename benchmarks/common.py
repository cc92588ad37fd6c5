"""Timing, machine-state and synthetic-data helpers shared by every benchmark."""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CONFIGS = ("world", "paper", "tiny")


def load_config(name: str, **overrides: Any) -> Any:
    """experiments/configs/<name>.py's config, with dotted-path overrides (e.g. {"model.dtype": "float32"})."""
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; expected one of {CONFIGS}")
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    with config.unlocked():
        for path, value in overrides.items():
            *parents, leaf = path.split(".")
            node = config
            for parent in parents:
                node = node[parent]
            node[leaf] = value
    return config


def timed(fn: Callable[[], Any], *, warmup: int, repeats: int) -> dict[str, float]:
    """Seconds per call of fn (which must block on its own result): median, min and max of `repeats`
    calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def first(analysis: Any) -> Mapping[str, Any]:
    """XLA analyses come back as a dict, or a list with one dict per program (older JAX): the first."""
    if isinstance(analysis, (list, tuple)):
        return analysis[0] if analysis else {}
    return analysis or {}


def compiled_flops(compiled: Any) -> float:
    """FLOPs of one call of a compiled function, by XLA's cost analysis (0.0 where it gives none)."""
    return float(first(compiled.cost_analysis()).get("flops", 0.0))


def compiled_memory(compiled: Any) -> dict[str, int]:
    """Argument, output, temporary and generated-code bytes of a compiled function (XLA's estimate)."""
    stats = compiled.memory_analysis()
    if stats is None:
        return {}
    names = {
        "argument_bytes": "argument_size_in_bytes",
        "output_bytes": "output_size_in_bytes",
        "temp_bytes": "temp_size_in_bytes",
        "alias_bytes": "alias_size_in_bytes",
        "code_bytes": "generated_code_size_in_bytes",
    }
    return {key: int(getattr(stats, attr, 0)) for key, attr in names.items()}


def matmul_peak(dtype: Any = jnp.float32, size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of a [size, size] @ [size, size] matmul on the default device: the practical peak that the
    utilization figures are ratios against (best of `repeats`, after a warm-up)."""
    keys = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(keys[0], (size, size), dtype)
    b = jax.random.normal(keys[1], (size, size), dtype)
    matmul = jax.jit(jnp.matmul)
    timing = timed(lambda: matmul(a, b).block_until_ready(), warmup=2, repeats=repeats)
    flops = 2.0 * size**3
    return {
        "size": size,
        "dtype": jnp.dtype(dtype).name,
        "best_s": timing["min_s"],
        "flops_per_s": flops / timing["min_s"],
        "median_flops_per_s": flops / timing["median_s"],
    }


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def machine() -> dict[str, Any]:
    """What the numbers were measured on, including the load other work put on it."""
    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": list(os.getloadavg()),
    }


def synthetic_batch(
    config: Any, batch_size: int, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """A training batch of the shapes and dtypes config.model takes, batch_size rows per pair stream,
    with teacher_probs so that no teacher runs: {"image_sound": {...}, "image_text": {...}}."""
    m = config.model
    rng = np.random.default_rng(seed)

    def images() -> np.ndarray:
        size = m.vision.image_size
        return rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)

    def teacher_probs() -> np.ndarray:
        return rng.dirichlet(np.full(m.num_classes, 0.1), batch_size).astype(np.float32)

    lengths = rng.integers(1, m.text.max_words + 1, batch_size)
    return {
        "image_sound": {
            "image": images(),
            "sound": rng.standard_normal(
                (batch_size, m.sound.time_steps, m.sound.freq_bins), dtype=np.float32
            ),
            "teacher_probs": teacher_probs(),
        },
        "image_text": {
            "image": images(),
            "text": rng.standard_normal(
                (batch_size, m.text.max_words, m.text.word_dim), dtype=np.float32
            ),
            "text_mask": np.arange(m.text.max_words)[None, :] < lengths[:, None],
            "teacher_probs": teacher_probs(),
        },
    }


_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def run_on_fake_devices(
    module: str, devices: int, args: list[str], timeout_s: float
) -> dict[str, Any]:
    """`python -m module *args` in a fresh process with `devices` fake CPU devices: the JSON object it
    prints last, or {"error": [its last stderr line]} when it fails."""
    flags = " ".join(
        f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_DEVICE_FLAG)
    )
    env = {**os.environ, "XLA_FLAGS": f"{flags} {_DEVICE_FLAG}={devices}".strip()}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])
