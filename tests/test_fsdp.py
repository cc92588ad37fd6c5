"""FSDP: the state sharded over a 2-D ('data', 'fsdp') mesh trains as the replicated state does, and a
checkpoint saved on either layout restores on the other and trains on identically."""

import functools

import jax
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from alignment import models, parallel
from experiments.runtime import checkpointing
from tests import helpers

BATCH = 32  # global, per pair type: 4 rows per device on 8 devices
CLASSES = helpers.TINY_MODEL["num_classes"]
LOSS = dict(
    objective="both",
    kl_weight=1.0,
    ranking_weight=0.3,
    margin=0.2,
    layers=("fc6", "fc7"),
    ranking_kind="hinge",
    temperature=0.1,
    uniformity_weight=0.5,
    words_weight=0.0,
    same_class_weight=1.0,
    same_class_streams=("image_sound", "image_text"),
    skip_nonfinite=False,
)
# Momentum keeps an optimizer state the size of the parameters, and plain SGD moves the parameters by
# the gradient itself: a gradient scaled by the 'fsdp' size, or missing a shard's part, shows.
OPTIMIZER = optax.sgd(0.3, momentum=0.9)
STEPS = 3


def make_batch(seed: int, size: int = BATCH) -> dict:
    """Both pair streams with teacher_probs, so the step needs no teacher."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, size=(size, 1))
    probs = lambda: rng.dirichlet(np.ones(CLASSES), size=size).astype(np.float32)
    image = lambda: rng.integers(0, 256, (size, 24, 24, 3), dtype=np.uint8)
    return {
        "image_sound": {
            "image": image(),
            "sound": rng.normal(size=(size, 16, 9)).astype(np.float32),
            "teacher_probs": probs(),
        },
        "image_text": {
            "image": image(),
            "text": rng.normal(size=(size, 6, 5)).astype(np.float32),
            "text_mask": np.arange(6)[None] < lengths,
            "teacher_probs": probs(),
        },
    }


def make_model(**overrides):
    config = {**helpers.TINY_MODEL, "word_head": False, **overrides}
    return models.create_model(ml_collections.ConfigDict(config))


def new_state(model, mesh):
    """A state made on `mesh` by create_train_state: the same values on every mesh."""
    return parallel.create_train_state(model, OPTIMIZER, jax.random.PRNGKey(0), make_batch(0), mesh)


@functools.cache
def _initial_host_state():
    return jax.device_get(new_state(make_model(), parallel.make_mesh()))


def initial_state(mesh):
    """A fresh copy of the initial state (the step donates its input) in `mesh`'s layout, without
    compiling an init each time."""
    host = _initial_host_state()
    return jax.device_put(host, parallel.state_shardings(host, mesh))


@functools.cache
def step_on(fsdp: int, accumulate: int = 1, loss: tuple = ()):
    mesh = parallel.make_mesh(fsdp=fsdp)
    loss_cfg = ml_collections.ConfigDict({**LOSS, **dict(loss)})
    step = parallel.make_train_step(make_model(), OPTIMIZER, loss_cfg, mesh, accumulate=accumulate)
    return mesh, step


def train(state, fsdp: int, seeds, accumulate: int = 1, loss: tuple = ()):
    """(state, host metrics of each step) after one step per batch seed."""
    mesh, step = step_on(fsdp, accumulate, loss)
    history = []
    for seed in seeds:
        state, metrics = step(state, parallel.shard_batch(make_batch(seed), mesh))
        history.append(jax.device_get(metrics))
    return state, history


@functools.cache
def replicated_run():
    return train(initial_state(parallel.make_mesh()), 1, range(1, STEPS + 1))


def assert_close(a, b) -> None:
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6),
        jax.device_get(a),
        jax.device_get(b),
    )


def test_fsdp_mesh_is_data_by_fsdp_and_keeps_the_1d_mesh_by_default():
    mesh = parallel.make_mesh(fsdp=2)
    assert mesh.axis_names == ("data", "fsdp") and dict(mesh.shape) == {"data": 4, "fsdp": 2}
    assert mesh.axis_types == (AxisType.Auto, AxisType.Auto)
    assert parallel.make_mesh(fsdp=1).axis_names == ("data",)
    assert list(parallel.data_mesh(mesh).devices) == list(mesh.devices.flat)
    with pytest.raises(ValueError, match="mesh.fsdp=3"):
        parallel.make_mesh(fsdp=3)


def test_fsdp_spec_shards_the_largest_divisible_dimension():
    assert parallel.fsdp_spec((3, 3, 8, 16), 4) == P(None, None, None, "fsdp")
    assert parallel.fsdp_spec((32, 6), 4) == P("fsdp", None)
    assert parallel.fsdp_spec((6, 10), 4) == P()  # no dimension divides: replicated
    assert parallel.fsdp_spec((), 4) == P()


def test_state_is_sharded_over_fsdp_with_the_replicated_values():
    sharded = new_state(make_model(), parallel.make_mesh(fsdp=4))
    kernel = sharded.params["head"]["fc7"]["kernel"]  # [16, 16]
    assert kernel.sharding.spec == P("fsdp", None)
    assert kernel.addressable_shards[0].data.shape == (4, 16)
    momentum = sharded.opt_state[0].trace["head"]["fc7"]["kernel"]
    assert momentum.sharding.spec == P("fsdp", None)
    assert sharded.params["head"]["logits"]["bias"].sharding.is_fully_replicated  # [7]
    assert sharded.step.sharding.is_fully_replicated and sharded.rng.sharding.is_fully_replicated
    assert_close(sharded, _initial_host_state())


@pytest.mark.parametrize("fsdp", [2, 4])
def test_fsdp_steps_equal_replicated_steps(fsdp):
    """data=4 x fsdp=2 and data=2 x fsdp=4: losses, gradient norms and parameters after 3 steps."""
    expected_state, expected = replicated_run()
    state, history = train(initial_state(parallel.make_mesh(fsdp=fsdp)), fsdp, range(1, STEPS + 1))
    assert_close(history, expected)
    assert_close(state.params, expected_state.params)
    assert_close(state.opt_state, expected_state.opt_state)
    # The step leaves the state in its layout: fc6's [16, 16] kernel split by rows over 'fsdp'.
    assert state.params["head"]["fc6"]["kernel"].addressable_shards[0].data.shape == (
        16 // fsdp,
        16,
    )
    assert all(m["finite"] == 1.0 and m["grad_norm"] > 0 for m in history)


@pytest.mark.parametrize("saved_fsdp, restored_fsdp", [(2, 1), (1, 4)])
def test_checkpoint_restores_across_layouts_and_trains_on_identically(
    tmp_path, saved_fsdp, restored_fsdp
):
    """One step, saved on one layout, restored on the other (the same values, the new layout), two
    more steps on each: the same as three steps replicated."""
    state, _ = train(initial_state(parallel.make_mesh(fsdp=saved_fsdp)), saved_fsdp, [1])
    saved = jax.device_get(state)
    manager = checkpointing.make_manager(str(tmp_path), async_save=False)
    checkpointing.save(manager, 1, state, {"data_position": 1})
    manager.wait_until_finished()
    abstract = jax.eval_shape(lambda s: s, state)
    restored, meta = checkpointing.restore(
        manager, abstract, parallel.make_mesh(fsdp=restored_fsdp)
    )
    manager.close()

    assert meta["data_position"] == 1
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), saved)
    kernel = restored.params["head"]["fc7"]["kernel"]
    assert kernel.sharding.is_fully_replicated == (restored_fsdp == 1)
    continued, history = train(restored, restored_fsdp, [2, 3])
    expected_state, expected = replicated_run()
    assert_close(history, expected[1:])
    assert_close(continued.params, expected_state.params)


def test_training_runs_with_fsdp_and_accumulation_from_the_config(tiny_world, tmp_path):
    """config.mesh.fsdp and config.train.accumulate reach the students' training: it trains, its state
    lives sharded over 'fsdp', and a batch that does not split into the micro-batches is refused."""
    import json

    from experiments.training import students

    overrides = {"mesh.fsdp": 2, "train.accumulate": 2, "total_steps": 2, "log_every": 1}
    config = helpers.tiny_config(*tiny_world, **overrides)
    state = students.train(config, str(tmp_path / "run"))
    assert int(state.step) == 2
    kernel = state.params["head"]["fc6"]["kernel"]
    assert parallel.FSDP_AXIS in kernel.sharding.spec
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert all(np.isfinite(row["loss"]) for row in rows if "loss" in row)
    with pytest.raises(ValueError, match="multiple of the 8 devices x config.train.accumulate=4"):
        students.train(
            helpers.tiny_config(*tiny_world, **{"train.accumulate": 4}), str(tmp_path / "b")
        )
