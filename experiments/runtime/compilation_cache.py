"""JAX's persistent compilation cache, on by default: compiled programs are kept on disk, so a rerun, a
resumed run and every evaluation after the first load the train and embed steps instead of compiling
them again (minutes at paper scale).

config.compilation_cache_dir picks the folder: "" (the default) is a per-user folder,
$XDG_CACHE_HOME/see-hear-read/jax or ~/.cache/see-hear-read/jax; "none" turns the cache off; anything else
is the folder (a local path or gs://...). The user's own JAX_COMPILATION_CACHE_DIR and
JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS, when set, win over both the knob and this module's threshold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
from absl import logging

from data_pipelines import paths

DISABLED = "none"
DIR_ENV = "JAX_COMPILATION_CACHE_DIR"
MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
# JAX keeps only programs that took longer than this to compile; its default, 1 s, leaves out the small
# configs' steps on a fast machine and the ~90 small programs of every run (88 jit(slice) in a tiny
# training run, a few KB each). Kept too, they took another 15% off a warm start of the tiny config
# on 2 CPU cores (18.6 s against 21.9 s, all compiled: 39 s), for under 1 MB.
MIN_COMPILE_TIME_S = 0.0


def default_dir(environ: Mapping[str, str] = os.environ) -> str:
    """The per-user folder: $XDG_CACHE_HOME/see-hear-read/jax, else ~/.cache/see-hear-read/jax."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "see-hear-read", "jax")


def cache_dir(setting: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The folder the cache lives in for config.compilation_cache_dir=`setting`, or None when off.

    $JAX_COMPILATION_CACHE_DIR, when set, is the user's choice made outside the config and wins.
    """
    if environ.get(DIR_ENV):
        return environ[DIR_ENV]
    if setting.strip().lower() == DISABLED:
        return None
    if not setting:
        return default_dir(environ)
    # Relative paths are taken from the current directory, as every path of a config is.
    return os.fspath(paths.as_path(os.path.expanduser(setting)))


def setup(setting: str) -> str | None:
    """Points JAX's persistent cache at cache_dir(setting) (before anything compiles) and returns it.

    JAX reads its JAX_* environment variables itself when imported, so those are left as they are.
    """
    path = cache_dir(setting)
    if path is None:
        logging.info("compilation cache: off (config.compilation_cache_dir=%s)", DISABLED)
        return None
    if not os.environ.get(DIR_ENV):
        jax.config.update("jax_compilation_cache_dir", path)
    if MIN_COMPILE_TIME_ENV not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    logging.info("compilation cache: %s", path)
    return path
