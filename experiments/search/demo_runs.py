"""What notebooks/demo.ipynb runs on: the demo's trained run when there is one, else a run trained now.

    run = demo_runs.choose_run()            # runs/demo/both if `make demo` wrote it, else a small run
    index = SearchIndex(run.config, run.workdir)

Environment: SHR_NOTEBOOK_WORKDIR (default runs/demo/both) and SHR_NOTEBOOK_CONFIG (default
world: a config name or a path) name the run to restore, relative to the repository root;
SHR_NOTEBOOK_TINY=1 skips it and trains the tiny config; SHR_NOTEBOOK_TMPDIR is where a run trained
here puts its data, teacher and checkpoints (default: a new temporary directory).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from alignment import parallel
from data_pipelines import paths
from experiments import configs
from experiments.runtime import datasets, restore
from experiments.training import students, teacher

ENV_WORKDIR = "SHR_NOTEBOOK_WORKDIR"
ENV_CONFIG = "SHR_NOTEBOOK_CONFIG"
ENV_TINY = "SHR_NOTEBOOK_TINY"
ENV_TMPDIR = "SHR_NOTEBOOK_TMPDIR"
DEFAULT_WORKDIR = "runs/demo/both"
DEFAULT_CONFIG = "world"
TINY_CONFIG = "tiny"
TINY_STEPS = 40
# The no-checkpoint run: the world config at this many teacher and student steps.
SMALL_STEPS = 600


def repo_root() -> str:
    """The folder holding the experiments package (the checkout, or site-packages when installed)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def quiet_logs() -> None:
    """Keeps TFDS's progress bars and absl's warnings out of the notebook's outputs."""
    import tensorflow_datasets as tfds
    from absl import logging

    logging.set_verbosity(logging.ERROR)
    tfds.disable_progress_bar()


def _resolve(path: str, root: str) -> str:
    """A relative local path taken from `root`; an absolute path or a URI (gs://...) as given."""
    return path if os.path.isabs(path) or paths.is_remote(path) else os.path.join(root, path)


def load_config(path: str, root: str | None = None) -> Any:
    """get_config() of a config file, with a relative config.data.data_dir made relative to `root`."""
    root = root or repo_root()
    path = configs.config_path(path)
    spec = importlib.util.spec_from_file_location("notebook_config", _resolve(path, root))
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no config file at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.data.data_dir = _resolve(config.data.data_dir, root)
    return config


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """A student checkpoint to query: its config, its workdir, and whether it was trained just now."""

    config: Any
    workdir: str
    trained_here: bool
    label: str = ""  # what was trained here, e.g. "tiny config"

    def describe(self) -> str:
        how = f"trained just now ({self.label})" if self.trained_here else "restored"
        return (
            f"{how}: {self.workdir}\n"
            f"data set: {self.config.data.builder}/{self.config.data.builder_config} in "
            f"{self.config.data.data_dir}"
        )


def choose_run(env: Mapping[str, str] | None = None, root: str | None = None) -> DemoRun:
    """The demo's "both" run when it and its data set exist (unless SHR_NOTEBOOK_TINY=1), else a tiny run
    trained now (see the module docstring for the environment variables)."""
    env = os.environ if env is None else env
    root = root or repo_root()
    if env.get(ENV_TINY, "0") not in ("", "0"):
        print(f"{ENV_TINY} is set: training the tiny config")
        return train_tiny(env.get(ENV_TMPDIR) or None)
    workdir = _resolve(env.get(ENV_WORKDIR) or DEFAULT_WORKDIR, root)
    if restore.latest_student_step(workdir) is not None:
        config = load_config(env.get(ENV_CONFIG) or DEFAULT_CONFIG, root)
        if datasets.is_built(datasets.make_builder(config.data)):
            return DemoRun(config, workdir, trained_here=False)
        print(f"the data set of {workdir} is not built in {config.data.data_dir}")
    else:
        print(f"no complete checkpoint in {workdir} (run `make demo` for the full run)")
    print(f"training the world config for {SMALL_STEPS} steps instead (a few minutes)")
    return train_small(env.get(ENV_TMPDIR) or None)


def train_tiny(directory: str | None = None, total_steps: int = TINY_STEPS) -> DemoRun:
    """Builds the small world, trains the tiny teacher and the students ("both") in `directory`: the
    mechanics in about half a minute (retrieval near random)."""
    return _train(TINY_CONFIG, directory, {"total_steps": total_steps}, "tiny config")


def train_small(directory: str | None = None) -> DemoRun:
    """Builds the world and trains the world config's teacher and students ("both") for
    SMALL_STEPS steps each in `directory`: a few minutes on 2 CPU cores, retrieval far above chance."""
    steps = {"total_steps": SMALL_STEPS, "teacher.total_steps": SMALL_STEPS}
    return _train(DEFAULT_CONFIG, directory, steps, f"world config, {SMALL_STEPS} steps")


def _train(name: str, directory: str | None, overrides: Mapping[str, int], label: str) -> DemoRun:
    directory = directory or tempfile.mkdtemp(prefix="shr_notebook_")
    config = load_config(name)
    config.data.data_dir = os.path.join(directory, "data")
    config.teacher.source = "checkpoint"
    config.teacher.path = os.path.join(directory, restore.TEACHER_SUBDIR)
    config.eval_every = 0
    config.update_from_flattened_dict(dict(overrides))
    config.checkpoint_every = config.total_steps
    builder = datasets.build(config.data)
    _, params, metrics = teacher.train_teacher(config, builder, directory, parallel.make_mesh())
    restore.save_teacher(config.teacher.path, params, {"metrics": metrics})
    workdir = os.path.join(directory, "both")
    students.train(config, workdir)
    return DemoRun(config, workdir, trained_here=True, label=label)
