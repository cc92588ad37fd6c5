"""JAX's persistent compilation cache is on by default: a training run through the entry point fills the
per-user folder, a rerun finds every program there, config.compilation_cache_dir=none turns it off, and
the user's JAX_COMPILATION_CACHE_DIR wins over the knob."""

import os
import subprocess

from experiments.runtime import compilation_cache
from tests import helpers


def _entries(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _train(tiny_world, workdir, xdg: str, *flags: str) -> str:
    env = helpers.subprocess_env(8)
    # The default's path: no folder chosen in the environment, the per-user one under XDG_CACHE_HOME.
    for name in (compilation_cache.DIR_ENV, compilation_cache.MIN_COMPILE_TIME_ENV):
        env.pop(name, None)
    env["XDG_CACHE_HOME"] = xdg
    args = helpers.config_flags(*tiny_world, total_steps=2, log_every=1)
    result = subprocess.run(
        helpers.python_module("experiments.train", *args, f"--workdir={workdir}", *flags),
        cwd=helpers.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr


def test_train_fills_the_per_user_cache_and_a_rerun_compiles_nothing_new(tiny_world, tmp_path):
    xdg = str(tmp_path / "xdg")
    folder = os.path.join(xdg, "see-hear-read", "jax")
    output = _train(tiny_world, tmp_path / "first", xdg)
    assert f"compilation cache: {folder}" in output
    entries = _entries(folder)
    assert any(name.startswith("jit_step-") for name in entries), entries
    # The same run again (a fresh workdir): every cached program is found, none is written anew.
    _train(tiny_world, tmp_path / "second", xdg)
    assert _entries(folder) == entries


def test_the_knob_turns_the_cache_off(tiny_world, tmp_path):
    xdg = str(tmp_path / "xdg")
    output = _train(tiny_world, tmp_path / "work", xdg, "--config.compilation_cache_dir=none")
    assert "compilation cache: off" in output
    assert not os.path.exists(os.path.join(xdg, "see-hear-read"))


def test_cache_folder_follows_the_knob_and_the_users_environment():
    assert compilation_cache.cache_dir("", {"XDG_CACHE_HOME": "/c"}) == "/c/see-hear-read/jax"
    home = os.path.join(os.path.expanduser("~"), ".cache", "see-hear-read", "jax")
    assert compilation_cache.cache_dir("", {}) == home
    assert compilation_cache.cache_dir("none", {}) is None
    assert compilation_cache.cache_dir("None", {}) is None
    assert compilation_cache.cache_dir("gs://bucket/jax", {}) == "gs://bucket/jax"
    assert compilation_cache.cache_dir("cache", {}) == os.path.abspath("cache")
    # The user's JAX_COMPILATION_CACHE_DIR wins, even over "none".
    chosen = {compilation_cache.DIR_ENV: "/mine"}
    assert compilation_cache.cache_dir("none", chosen) == "/mine"
    assert compilation_cache.cache_dir("/elsewhere", chosen) == "/mine"
