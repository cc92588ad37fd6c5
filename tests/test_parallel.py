"""The sharded step: equal to the single-device step on the same global batch, guarded against non-finite
updates, compiled once, and able to fit a fixed batch."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from alignment import models, parallel
from tests import helpers

BATCH = 16  # global, per pair type: 2 per device on 8 devices

MODEL = {**helpers.TINY_MODEL, "word_head": True}
TEACHER = dict(
    image_size=24,
    channels=(4, 4, 4, 4, 4),
    kernels=(5, 3, 3, 3, 3),
    strides=(2, 1, 1, 1, 1),
    pool="maxmean",
    hidden=(8,),
    num_classes=7,
)
LOSS = dict(
    objective="both",
    kl_weight=1.0,
    ranking_weight=0.3,
    margin=0.2,
    layers=("fc6", "fc7"),
    ranking_kind="hinge",
    temperature=0.1,
    uniformity_weight=0.5,  # its sharded value must equal the single-device one too
    words_weight=0.5,  # and so must the caption words' ranking
    same_class_weight=2.0,  # and the ranking with same-class negatives weighed
    same_class_streams=("image_sound", "image_text"),
    skip_nonfinite=True,
)


def _batch(seed: int) -> dict:
    """image+sound pairs carry teacher_probs; image+text pairs leave them to the teacher in the step."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, size=(BATCH, 1))
    return {
        "image_sound": {
            "image": rng.integers(0, 256, (BATCH, 24, 24, 3), dtype=np.uint8),
            "sound": rng.normal(size=(BATCH, 16, 9)).astype(np.float32),
            "teacher_probs": rng.dirichlet(np.ones(7), size=BATCH).astype(np.float32),
        },
        "image_text": {
            "image": rng.integers(0, 256, (BATCH, 24, 24, 3), dtype=np.uint8),
            "text": rng.normal(size=(BATCH, 6, 5)).astype(np.float32),
            "text_mask": np.arange(6)[None] < lengths,
        },
    }


@pytest.fixture(scope="module")
def setup():
    model = models.create_model(ml_collections.ConfigDict(MODEL))
    teacher = models.create_teacher(ml_collections.ConfigDict(TEACHER))
    teacher_params = jax.jit(
        lambda k: teacher.init(k, teacher.example_inputs())["params"],
        compiler_options=parallel.init_compiler_options(),
    )(jax.random.key(1))
    optimizer = optax.adam(3e-3)
    loss_cfg = ml_collections.ConfigDict(LOSS)
    mesh = parallel.make_mesh()
    state = parallel.create_train_state(model, optimizer, jax.random.key(0), _batch(0), mesh)
    step = parallel.make_train_step(model, optimizer, loss_cfg, mesh, teacher=teacher)
    return dict(
        model=model,
        teacher=teacher,
        teacher_params=teacher_params,
        optimizer=optimizer,
        loss_cfg=loss_cfg,
        mesh=mesh,
        state=state,
        step=step,
    )


def _copy(x: jax.Array) -> jax.Array:
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jnp.copy(jax.random.key_data(x)))
    return jnp.copy(x)


def _fresh_state(setup, mesh, optimizer=None):
    """A copy of the initial state on `mesh` (the step donates its input), optionally for `optimizer`."""
    state = jax.tree.map(_copy, setup["state"])
    if optimizer is not None:
        state = state.replace(opt_state=optimizer.init(state.params))
    return jax.device_put(state, parallel.replicated(mesh))


def _host(tree):
    return jax.tree.map(np.asarray, tree)


def test_mesh_spans_every_device_on_one_auto_axis():
    mesh = parallel.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.size == len(jax.devices()) == 8
    assert mesh.axis_types == (AxisType.Auto,)


def test_shard_batch_splits_the_batch_over_data(setup):
    sharded = parallel.shard_batch(_batch(0), setup["mesh"])
    sound = sharded["image_sound"]["sound"]
    assert sound.shape == (BATCH, 16, 9)
    assert sound.sharding == NamedSharding(setup["mesh"], P("data"))
    assert len(sound.addressable_shards) == 8 and sound.addressable_shards[0].data.shape[0] == 2


def test_state_is_replicated_and_counts_from_zero(setup):
    state = setup["state"]
    assert int(state.step) == 0 and int(state.nonfinite_count) == 0
    kernel = state.params["head"]["fc7"]["kernel"]
    assert kernel.sharding.is_fully_replicated and kernel.dtype == jnp.float32


def test_sharded_step_equals_single_device_step(setup):
    """SGD, so that the updated parameters are the gradients, scaled, plus the initial parameters."""
    batch = _batch(1)
    sgd = optax.sgd(0.5)
    results = []
    for mesh in (setup["mesh"], parallel.make_mesh(jax.devices()[:1])):
        step = parallel.make_train_step(
            setup["model"], sgd, setup["loss_cfg"], mesh, teacher=setup["teacher"]
        )
        teacher_params = jax.device_put(setup["teacher_params"], parallel.replicated(mesh))
        state, metrics = step(
            _fresh_state(setup, mesh, sgd), parallel.shard_batch(batch, mesh), teacher_params
        )
        results.append((_host(state.params), _host(metrics)))
    (params8, metrics8), (params1, metrics1) = results

    assert (
        set(metrics8)
        == set(metrics1)
        >= {"loss", "kl_text", "rank_txt_img", "words_img", "words_txt", "grad_norm", "finite"}
    )
    for name in metrics8:
        np.testing.assert_allclose(metrics8[name], metrics1[name], rtol=1e-5, err_msg=name)
    initial = _host(setup["state"].params)
    leaves = zip(
        jax.tree.leaves(initial), jax.tree.leaves(params8), jax.tree.leaves(params1), strict=True
    )
    for before, p8, p1 in leaves:
        np.testing.assert_allclose(p8, p1, rtol=1e-5, atol=1e-6)
        # Each parameter's update agrees to 1e-5 of the largest update of its array.
        np.testing.assert_allclose(
            p8 - before, p1 - before, atol=1e-5 * np.abs(p1 - before).max() + 1e-7
        )
    assert float(metrics8["grad_norm"]) > 0


def test_nonfinite_step_keeps_the_state(setup):
    batch = _batch(2)
    batch["image_sound"]["sound"][3, 5, 2] = np.nan
    initial = _host(setup["state"].params)
    state, metrics = setup["step"](
        _fresh_state(setup, setup["mesh"]),
        parallel.shard_batch(batch, setup["mesh"]),
        setup["teacher_params"],
    )
    assert float(metrics["finite"]) == 0.0
    assert int(state.nonfinite_count) == 1 and int(state.step) == 1
    for before, after in zip(jax.tree.leaves(initial), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(before, after)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.opt_state))


def test_step_compiles_once_and_fits_a_fixed_batch(setup):
    batch = parallel.shard_batch(_batch(3), setup["mesh"])
    state, first = setup["step"](_fresh_state(setup, setup["mesh"]), batch, setup["teacher_params"])
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        losses = [float(first["loss"])]
        for _ in range(29):
            state, metrics = setup["step"](state, batch, setup["teacher_params"])
            losses.append(float(metrics["loss"]))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    assert int(state.step) == 30 and int(state.nonfinite_count) == 0
    assert losses[-1] < 0.7 * losses[0], losses


def test_a_stream_without_teacher_probs_needs_the_teacher(setup):
    step = parallel.make_train_step(
        setup["model"], setup["optimizer"], setup["loss_cfg"], setup["mesh"]
    )
    batch = parallel.shard_batch(_batch(4), setup["mesh"])
    with pytest.raises(ValueError, match="teacher_probs"):
        step(_fresh_state(setup, setup["mesh"]), batch)


def test_embed_fn_equals_apply(setup):
    model, mesh = setup["model"], setup["mesh"]
    params = setup["state"].params
    text = _batch(5)["image_text"]
    embed = parallel.make_embed_fn(model, mesh)
    sharded = parallel.shard_batch(text, mesh)
    got = embed(params, sharded["text"], "text", sharded["text_mask"])
    expected = jax.jit(lambda p, x, m: model.apply({"params": p}, x, "text", m))(
        params, text["text"], text["text_mask"]
    )
    assert got["fc7"].sharding.spec == P("data")
    for name in ("tower", "fc6", "fc7", "logits"):
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)


def test_float16_inputs_step_as_if_widened_on_the_host(setup):
    """Compact rows reach the step as float16 and are widened inside it: parameters and metrics equal,
    to the bit, those of a step fed the same values widened to float32 beforehand."""
    half = _batch(3)
    for stream, name in (("image_sound", "sound"), ("image_text", "text")):
        half[stream][name] = half[stream][name].astype(np.float16)
    widened = jax.tree.map(lambda x: x.astype(np.float32) if x.dtype == np.float16 else x, half)
    results = []
    for batch in (half, widened):
        state = _fresh_state(setup, setup["mesh"])
        sharded = parallel.shard_batch(batch, setup["mesh"])
        state, metrics = setup["step"](state, sharded, setup["teacher_params"])
        results.append(_host((state.params, metrics)))
    jax.tree.map(np.testing.assert_array_equal, *results)
    assert results[0][1]["finite"] == 1.0


def test_prefetch_puts_batches_on_the_mesh_ahead_in_order(setup):
    taken = []

    def host_batches():
        for seed in range(5):
            taken.append(seed)
            yield _batch(seed)

    batches = parallel.prefetch_to_mesh(host_batches(), setup["mesh"], ahead=2)
    first = next(batches)
    assert taken == [0, 1, 2]  # two batches on the devices beyond the one handed over
    assert first["image_text"]["text"].sharding == NamedSharding(setup["mesh"], P("data"))
    rest = list(batches)
    for seed, batch in enumerate([first, *rest]):
        np.testing.assert_array_equal(
            np.asarray(batch["image_sound"]["sound"]), _batch(seed)["image_sound"]["sound"]
        )
    assert len(rest) == 4
