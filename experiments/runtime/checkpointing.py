"""orbax checkpoints of a TrainState plus JSON metadata (config, data position), restorable anywhere.

Saves are asynchronous and atomic: orbax writes into a temporary directory and renames it on success, so
an interrupted save is never listed as a step and `latest_step` always names a complete checkpoint (on
gs://, where there is no rename, orbax marks a complete step with a commit_success.txt file instead).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh

from alignment import parallel
from data_pipelines import paths

STATE = "state"
META = "meta"
# orbax writes arrays with tensorstore, which it points at a local folder or, for these, at GCS.
REMOTE_SCHEMES = ("gs://",)


class CheckpointMismatchError(ValueError):
    """The workdir holds a checkpoint whose tree or shapes differ from the model being restored."""


def make_manager(directory: str, keep: int = 3, async_save: bool = True) -> ocp.CheckpointManager:
    """A CheckpointManager over `directory` (a local folder, made absolute as orbax needs, or a gs://
    URI, kept as it is) keeping the last `keep` complete steps."""
    if paths.is_remote(directory) and not directory.startswith(REMOTE_SCHEMES):
        raise ValueError(
            f"checkpoints cannot be written to {directory}: orbax stores them on a local disk or gs:// "
            "only; use one of those for --workdir (or config.teacher.path)"
        )
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save
    )
    # Named handlers let a fresh manager read an existing checkpoint's metadata (the shape check).
    handlers = {STATE: ocp.StandardCheckpointHandler(), META: ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(paths.as_path(directory), options=options, item_handlers=handlers)


def save(manager: ocp.CheckpointManager, step: int, state: Any, meta: dict) -> None:
    """Starts saving `state` (any pytree of arrays) and JSON-able `meta` at `step`."""
    manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )


def _path_name(path: tuple) -> str:
    """ "params/head/fc6/kernel": the same name whether a level is a dict key, attribute or index
    (a saved dataclass comes back from metadata as a dict)."""
    parts = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)
    return "/".join(str(part) for part in parts)


def _shapes(tree: Any) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return {_path_name(path): tuple(leaf.shape) for path, leaf in leaves}


def check_compatible(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> None:
    """Raises CheckpointMismatchError naming the first differing leaf, before anything is compiled."""
    stored = manager.item_metadata(step)[STATE]
    stored_tree = getattr(stored, "tree", stored)
    stored_shapes = _shapes(stored_tree)
    wanted = _shapes(abstract_state)
    for name, shape in wanted.items():
        if name not in stored_shapes:
            raise CheckpointMismatchError(
                f"checkpoint step {step} in {manager.directory} has no {name}: it was written by a "
                "different model; use a new --workdir or the matching config"
            )
        if stored_shapes[name] != shape:
            raise CheckpointMismatchError(
                f"checkpoint step {step} in {manager.directory} stores {name} with shape "
                f"{stored_shapes[name]}, the config builds {shape}: use a new --workdir or the "
                "matching config"
            )


def target_abstract(tree: Any, mesh: Mesh) -> Any:
    """ShapeDtypeStructs of `tree` laid out on `mesh` by parallel.state_shardings (replicated, or a
    TrainState's params and opt_state sharded over 'fsdp'): orbax reads each device's part of the
    stored arrays into that layout, whatever the layout they were saved from."""
    shardings = parallel.state_shardings(tree, mesh)
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=s), tree, shardings
    )


def restore(
    manager: ocp.CheckpointManager, abstract_state: Any, mesh: Mesh, step: int | None = None
) -> tuple[Any, dict]:
    """The one restore path: (state, meta) at `step` (default: the latest complete one), laid out on
    `mesh` (target_abstract), so a checkpoint written on any number of devices, replicated or sharded
    over 'fsdp', loads on any other mesh.

    abstract_state: the tree's shapes and dtypes (jax.eval_shape of its init); checked against the
    stored tree first, so a mismatch is one line naming the leaf, before anything is compiled.
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no complete checkpoint in {manager.directory}")
    check_compatible(manager, step, abstract_state)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target_abstract(abstract_state, mesh)),
            meta=ocp.args.JsonRestore(),
        ),
    )
    return restored[STATE], restored[META]


def restore_directory(
    directory: str, abstract_state: Any, mesh: Mesh, step: int | None = None
) -> tuple[Any, dict]:
    """restore() from a checkpoint directory, read-only (the manager is opened and closed here)."""
    manager = make_manager(directory, async_save=False)
    try:
        return restore(manager, abstract_state, mesh, step)
    finally:
        manager.close()


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    """The JSON metadata saved with `step`, without restoring the state."""
    restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored[META])
