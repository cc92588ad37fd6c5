"""What notebooks/demo.ipynb calls: pick or train a run, query it, show the matches, tabulate retrieval.

    run = choose_run()                      # runs/demo/both if `make demo` wrote it, else a tiny run
    index = SearchIndex(run.config, run.workdir)
    show_sound_matches(index, index.search(...), world_of(index))

Environment: SHR_NOTEBOOK_WORKDIR (default runs/demo/both) and SHR_NOTEBOOK_CONFIG (default
world: a config name or a path) name the run to restore, relative to the repository root;
SHR_NOTEBOOK_TINY=1 skips it and trains the tiny config; SHR_NOTEBOOK_TMPDIR is where a tiny run puts its
data, teacher and checkpoints (default: a new temporary directory).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from alignment import parallel
from data_pipelines import paths
from data_pipelines.world import World
from experiments import configs
from experiments.evaluation import retrieval, suite
from experiments.evaluation.rows import RESULTS
from experiments.runtime import checkpointing, datasets, restore
from experiments.search.index import Match, SearchIndex
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
SHORT = {"image": "IMG", "sound": "SND", "text": "TXT"}


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


def _has_checkpoint(workdir: str) -> bool:
    directory = restore.subdir(workdir, restore.CHECKPOINT_SUBDIR)
    if not paths.as_path(directory).is_dir():
        return False
    manager = checkpointing.make_manager(directory, async_save=False)
    try:
        return manager.latest_step() is not None
    finally:
        manager.close()


def choose_run(env: Mapping[str, str] | None = None, root: str | None = None) -> DemoRun:
    """The demo's "both" run when it and its data set exist (unless SHR_NOTEBOOK_TINY=1), else a tiny run
    trained now (see the module docstring for the environment variables)."""
    env = os.environ if env is None else env
    root = root or repo_root()
    if env.get(ENV_TINY, "0") not in ("", "0"):
        print(f"{ENV_TINY} is set: training the tiny config")
        return train_tiny(env.get(ENV_TMPDIR) or None)
    workdir = _resolve(env.get(ENV_WORKDIR) or DEFAULT_WORKDIR, root)
    if _has_checkpoint(workdir):
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


def world_of(index: SearchIndex) -> World | None:
    """The bundled world the index's data set was generated from (None for other data sets)."""
    world_config = getattr(index.builder.builder_config, "world", None)
    return None if world_config is None else World(world_config)


def test_query(index: SearchIndex, modality: str, position: int = 0) -> tuple[str, dict]:
    """(id, model inputs with a batch of 1) of the `position`-th test row holding `modality`."""
    row = int(np.flatnonzero(index.test[f"has_{modality}"])[position])
    names = ("text", "text_mask") if modality == "text" else (modality,)
    return str(index.test["id"][row]), index.read(row, list(names))


def describe_item(index: SearchIndex, item_id: str) -> str:
    """A test row's id, concept and caption, e.g. for the query of a search."""
    row = _row(index, item_id)
    label = int(index.test["label"][row])
    name = index.names[label] if 0 <= label < len(index.names) else ""
    return f"{item_id}  [{name}]  {index.test['caption'][row]}"


def _row(index: SearchIndex, item_id: str) -> int:
    return int(np.flatnonzero(index.test["id"] == item_id)[0])


def _title(match: Match) -> str:
    return f"#{match.rank} {match.id}\ncos {match.cosine:+.3f} [{match.label}]"


def _png(figure: Figure):
    from IPython.display import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


def _grid(index: SearchIndex, ids: Sequence[str], titles: Sequence[str], modality: str):
    figure = Figure(figsize=(3 * len(ids), 2.8))
    for i, (item_id, title) in enumerate(zip(ids, titles, strict=True)):
        axis = figure.add_subplot(1, len(ids), i + 1)
        values = index.read(_row(index, item_id), [modality])[modality][0]
        if modality == "sound":
            # [T, F] log spectrogram: time across, frequency up.
            axis.imshow(values.T, origin="lower", aspect="auto", cmap="magma")
            axis.set_xlabel("time step")
            if i == 0:
                axis.set_ylabel("frequency bin")
        else:
            axis.imshow(values)
            axis.axis("off")
        axis.set_title(title, fontsize=8)
    return _png(figure)


def sound_player(world: World | None, item_id: str):
    """An audio player of the world's waveform for a row id such as "test-0000012" (None off-world)."""
    if world is None:
        return None
    from IPython.display import Audio

    split, index = item_id.rsplit("-", 1)
    waveform = world.sample(split, int(index))["waveform"]
    if waveform is None:
        return None
    return Audio(data=waveform, rate=world.config.sample_rate, normalize=True)


def show_sounds(index: SearchIndex, ids: Sequence[str], titles: Sequence[str], world) -> None:
    """Spectrograms of test sounds, then a player for each when the data set is the bundled world."""
    from IPython.display import HTML, display

    display(_grid(index, ids, titles, "sound"))
    if world is None:
        print("(not the bundled world: no waveforms to play)")
        return
    for item_id, title in zip(ids, titles, strict=True):
        display(HTML(f"<b>{title.splitlines()[0]}</b>"), sound_player(world, item_id))


def show_sound_matches(index: SearchIndex, matches: Sequence[Match], world) -> None:
    show_sounds(index, [m.id for m in matches], [_title(m) for m in matches], world)


def show_images(index: SearchIndex, ids: Sequence[str], titles: Sequence[str]) -> None:
    from IPython.display import display

    display(_grid(index, ids, titles, "image"))


def show_image_matches(index: SearchIndex, matches: Sequence[Match]) -> None:
    show_images(index, [m.id for m in matches], [_title(m) for m in matches])


def retrieval_summary(index: SearchIndex) -> str:
    """The retrieval evaluator's median rank and recall@k per direction for the index's run, as text."""
    (row,) = [r for r in suite.run(index.context, ["retrieval"]) if r.table == RESULTS]
    return format_retrieval(row.fields)


def format_retrieval(result: Mapping[str, Any]) -> str:
    """One line per direction of a retrieval evaluator's fields (sound<->text marked never paired)."""
    chunk, pairs = result["chunk"], result["num_pairs"]
    lines = [
        f"retrieval at {result['layer']}, step {result['step']}: median rank within chunks of {chunk} "
        f"of {pairs} test triplets (random about {(chunk + 1) / 2:.0f}, best 1)",
        f"{'direction':<10} {'median rank':>11} {'R@1':>6} {'R@5':>6} {'R@10':>6}",
    ]
    for query, target in retrieval.DIRECTIONS:
        scores = result["retrieval"][f"{query}->{target}"]
        note = "  (never paired)" if (query, target) in retrieval.UNPAIRED_DIRECTIONS else ""
        lines.append(
            f"{SHORT[query] + '->' + SHORT[target]:<10} {scores['median_rank']:>11.1f} "
            + " ".join(f"{100 * scores[f'recall@{k}']:>5.0f}%" for k in retrieval.RECALL_KS)
            + note
        )
    return "\n".join(lines)
