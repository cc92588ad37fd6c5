"""Shared by the experiment tests: tiny configs, the tiny world, subprocess runs with fake devices, a
miniature COCO folder."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from typing import Any

import jax
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "experiments/configs/tiny.py"

# A tiny model: 24x24 images, 16x9 spectrograms, 6 words of 5-d vectors, 16-d everywhere.
TINY_MODEL = dict(
    dtype="float32",
    tower_dim=16,
    fc_dims=(16, 16),
    num_classes=7,
    vision=dict(
        image_size=24,
        channels=(4, 8, 8, 8, 8),
        kernels=(5, 3, 3, 3, 3),
        strides=(2, 1, 1, 1, 1),
        pool="maxmean",
    ),
    sound=dict(
        time_steps=16,
        freq_bins=9,
        channels=(8, 8, 8, 8),
        kernels=(3, 3, 3, 3),
        strides=(1, 2, 1, 1),
    ),
    text=dict(max_words=6, word_dim=5, channels=(8, 8, 8, 8), kernels=(3, 3, 3, 3)),
)


def tiny_config(data_dir: str, teacher_dir: str, **overrides: Any):
    """The tiny config reading `data_dir` and the teacher checkpoint in `teacher_dir`; overrides use
    dotted keys, e.g. tiny_config(d, t, **{"loss.objective": "ranking"})."""
    from experiments.configs import tiny

    config = tiny.get_config()
    for key, value in {
        "data.data_dir": data_dir,
        "teacher.source": "checkpoint",
        "teacher.path": teacher_dir,
        **overrides,
    }.items():
        *parents, leaf = key.split(".")
        target = config
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config


def config_flags(data_dir: str, teacher_dir: str, **overrides: Any) -> list[str]:
    """The same as tiny_config, as command-line flags."""
    values = {
        "data.data_dir": data_dir,
        "teacher.source": "checkpoint",
        "teacher.path": teacher_dir,
        **overrides,
    }
    return [f"--config={TINY}"] + [f"--config.{k}={v}" for k, v in values.items()]


def build_tiny_world(root: str) -> tuple[str, str]:
    from alignment import parallel
    from experiments.runtime import datasets, restore
    from experiments.training import teacher

    data_dir, teacher_dir = os.path.join(root, "data"), os.path.join(root, "teacher")
    config = tiny_config(data_dir, teacher_dir)
    builder = datasets.build(config.data)
    _, params, _ = teacher.train_teacher(config, builder, root, parallel.make_mesh())
    restore.save_teacher(teacher_dir, params, {})
    return data_dir, teacher_dir


def python_module(module: str, *args: str, devices: int = 8) -> list[str]:
    del devices
    return [sys.executable, "-m", module, *args]


def subprocess_env(devices: int = 8) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    # The entry points cache compiled programs in a per-user folder by default; the tests' runs share
    # one of their own instead (unless the developer chose one), leaving the user's untouched.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", _test_compilation_cache())
    return env


_COMPILATION_CACHE: list[str] = []


def _test_compilation_cache() -> str:
    """A compilation cache folder for this test process's subprocesses, removed when it exits."""
    if not _COMPILATION_CACHE:
        path = tempfile.mkdtemp(prefix="shr-test-jax-cache-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _COMPILATION_CACHE.append(path)
    return _COMPILATION_CACHE[0]


def run_module(module: str, *args: str, devices: int = 8, timeout: int = 300):
    """Runs `python -m module args` in the repo with `devices` fake CPU devices."""
    return subprocess.run(
        python_module(module, *args),
        cwd=ROOT,
        env=subprocess_env(devices),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Job:
    """`python -m module *flags` as one process of 8 fake devices, or as the `processes` processes of
    one distributed job (gloo collectives over localhost, 8 / processes devices each); each output in
    the file <log_prefix>.process<i>.log."""

    def __init__(self, module: str, flags: list[str], log_prefix: str, processes: int = 1):
        if processes > 1:
            flags = [
                *flags,
                "--distributed",
                "--cpu_collectives",
                f"--coordinator_address=127.0.0.1:{free_port()}",
                f"--num_processes={processes}",
            ]
        self.logs = [f"{log_prefix}.process{i}.log" for i in range(processes)]
        self.procs = []
        for i, log in enumerate(self.logs):
            rank = [f"--process_id={i}"] if processes > 1 else []
            with open(log, "w") as out:  # the child keeps its own descriptor
                self.procs.append(
                    subprocess.Popen(
                        python_module(module, *flags, *rank),
                        cwd=ROOT,
                        env=subprocess_env(devices=8 // processes),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )

    def outputs(self) -> list[str]:
        result = []
        for log in self.logs:
            with open(log) as f:
                result.append(f.read())
        return result

    def finish(self, timeout: int = 300) -> list[tuple[int, str, int]]:
        """Waits for every process to end (killing what is left after `timeout` s); (returncode,
        output, pid) of each."""
        try:
            for proc in self.procs:
                proc.wait(timeout=timeout)
        finally:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return [
            (proc.returncode, output, proc.pid)
            for proc, output in zip(self.procs, self.outputs(), strict=True)
        ]


def restore_params(workdir: str, config, devices=None, step: int | None = None):
    """The parameters saved in `workdir` (latest step by default), restored onto `devices`."""
    from alignment import parallel
    from experiments.runtime import restore

    directory = os.path.join(workdir, restore.CHECKPOINT_SUBDIR)
    _, state, meta = restore.restore_student(
        config, workdir, parallel.make_mesh(devices), directory, step
    )
    return state, meta


def assert_trees_equal(a, b, rtol: float = 0.0) -> None:
    leaves_a, leaves_b = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        if rtol:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-7)
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# The tiny config as the resume and multi-host tests run it: a checkpoint every 5 steps, all kept.
RESUME_OVERRIDES = {
    "total_steps": 60,
    "checkpoint_every": 5,
    "log_every": 5,
    "keep_checkpoints": 20,
}
_UNINTERRUPTED: dict = {}


def uninterrupted_run(tiny_world, tmp_path_factory, **overrides: Any):
    """(config, workdir, final state) of students.train on the tiny config with `overrides`, on all
    devices in this process; run once per test session and shared by the tests that compare to it."""
    key = (tuple(tiny_world), tuple(sorted(overrides.items())))
    if key not in _UNINTERRUPTED:
        from experiments.training import students

        config = tiny_config(*tiny_world, **overrides)
        workdir = str(tmp_path_factory.mktemp("uninterrupted"))
        _UNINTERRUPTED[key] = (config, workdir, students.train(config, workdir))
    return _UNINTERRUPTED[key]


def assert_trees_close(a, b, rtol: float) -> None:
    """Each leaf of `a` within rtol of `b`'s in norm, ||a - b|| <= rtol ||b||: for results that differ
    only in summation order, where elementwise tolerances fail on entries near zero."""
    leaves_a = jax.tree_util.tree_leaves_with_path(jax.device_get(a))
    leaves_b = jax.tree.leaves(jax.device_get(b))
    assert len(leaves_a) == len(leaves_b)
    for (path, x), y in zip(leaves_a, leaves_b, strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        assert x.shape == y.shape, jax.tree_util.keystr(path)
        error = np.linalg.norm(x - y)
        assert error <= rtol * np.linalg.norm(y), f"{jax.tree_util.keystr(path)}: {error}"


def write_fake_coco(root) -> None:
    """A COCO 2017 captions folder in miniature: 3 train and 2 val images, two captions each."""
    for split, count in (("train2017", 3), ("val2017", 2)):
        os.makedirs(root / split)
        images, annotations = [], []
        for i in range(count):
            name = f"{i:012d}.jpg"
            Image.fromarray(np.full((30, 40, 3), 40 * i, np.uint8)).save(root / split / name)
            images.append({"id": i, "file_name": name})
            for j, caption in enumerate(["A dog on a red sofa.", "Two birds in a tree"]):
                annotations.append({"id": 10 * i + j, "image_id": i, "caption": caption})
        os.makedirs(root / "annotations", exist_ok=True)
        data = {"images": images, "annotations": annotations}
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(data))
