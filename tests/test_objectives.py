"""The ranking kinds (hinge, InfoNCE at a fixed or learned temperature, SigLIP's sigmoid), gathered or
chunked around the mesh: the sharded step's loss path equals a dense single-device reference on the
same global batch, in loss and in gradients (embeddings and learned scalars); the learned scalars are
parameters that train and checkpoint; the default config learns none."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax import lax, shard_map
from jax.sharding import PartitionSpec as P

from alignment import losses, models, parallel
from experiments.configs.base import base_config
from experiments.runtime import checkpointing, restore
from tests import helpers

N, D = 32, 6  # global batch (4 rows per device on 8) and embedding width
LAYERS = ("fc6", "fc7")
# Learned scalars away from their initial values, so that every gradient is far from zero.
SCALARS = {
    "infonce_learned": {"image_sound": {"log_scale": 2.5}, "image_text": {"log_scale": 3.0}},
    "sigmoid": {
        "image_sound": {"log_scale": 1.5, "bias": -2.0},
        "image_text": {"log_scale": 2.0, "bias": -1.0},
    },
}


def _loss_cfg(kind: str, chunked: bool, **overrides) -> ml_collections.ConfigDict:
    cfg = base_config().loss
    cfg.update(dict(objective="ranking", ranking_kind=kind, chunked=chunked, layers=LAYERS))
    cfg.update(overrides)
    return cfg


def _reps(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        stream: {
            modality: {layer: jnp.asarray(rng.normal(size=(N, D)), jnp.float32) for layer in LAYERS}
            for modality in pair
        }
        for stream, pair in losses.STREAMS.items()
    }


def _loss_params(kind: str) -> dict:
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), SCALARS.get(kind, {}))


# The dense reference, written out on the whole global batch.
def _cosines(a, b):
    a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


def _dense_direction(cfg, a, b, learned, classes=None):
    """One direction's loss, anchors a against every row of b, row i's pair being row i."""
    cos = _cosines(a, b)
    eye = jnp.eye(N, dtype=bool)
    if cfg.ranking_kind == "hinge":
        hinge = jnp.maximum(0.0, cfg.margin - jnp.diag(cos)[:, None] + cos)
        if classes is not None:
            same = classes[:, None] == classes[None, :]
            hinge = hinge * jnp.where(same, cfg.same_class_weight, 1.0)
        return jnp.sum(jnp.where(eye, 0.0, hinge)) / N
    if cfg.ranking_kind == "infonce":
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(cos / cfg.temperature, axis=-1)))
    if cfg.ranking_kind == "infonce_learned":
        scale = jnp.minimum(jnp.exp(learned["log_scale"]), 100.0)
        return -jnp.mean(jnp.diag(jax.nn.log_softmax(scale * cos, axis=-1)))
    logits = jnp.exp(learned["log_scale"]) * cos + learned["bias"]
    z = jnp.where(eye, 1.0, -1.0)
    return -jnp.sum(jnp.log(jax.nn.sigmoid(z * logits))) / N


def _dense_loss(cfg, reps, loss_params, classes=None):
    total = 0.0
    for stream, (x, y) in losses.STREAMS.items():
        for layer in LAYERS:
            a, b = reps[stream][x][layer], reps[stream][y][layer]
            learned = loss_params.get(stream)
            c = None if classes is None else classes[stream]
            total += _dense_direction(cfg, a, b, learned, c) + _dense_direction(
                cfg, b, a, learned, c
            )
    return cfg.ranking_weight * total


def _sharded(cfg, reps, loss_params, teacher_probs=None):
    """(loss, grads of reps, grads of loss_params) as the train step computes them: each device
    differentiates its own share of the objective, seeing the global batch through parallel.negatives,
    and the step's pmean averages (the embeddings' gradients are those of the mean of the shares)."""
    mesh = parallel.make_mesh()

    def per_device(reps, loss_params, teacher_probs):
        gather, ring = parallel.negatives(cfg)
        local = jax.tree.map(lambda x: lax.pcast(x, "data", to="varying"), loss_params)

        def loss_fn(reps, loss_params):
            return losses.objective(reps, teacher_probs, cfg, gather, None, loss_params, ring)[0]

        loss, (d_reps, d_params) = jax.value_and_grad(loss_fn, argnums=(0, 1))(reps, local)
        devices = lax.axis_size("data")
        d_reps = jax.tree.map(lambda g: g / devices, d_reps)
        return lax.pmean(loss, "data"), d_reps, lax.pmean(d_params, "data")

    specs = (P("data"), P(), P("data"))
    fn = shard_map(per_device, mesh=mesh, in_specs=specs, out_specs=(P(), P("data"), P()))
    return jax.jit(fn)(reps, loss_params, teacher_probs or {})


def _assert_close(got, want, what):
    loss, d_reps, d_params = got
    np.testing.assert_allclose(loss, want[0], rtol=1e-5, err_msg=f"{what}: loss")
    for path, g in jax.tree_util.tree_leaves_with_path((d_reps, d_params)):
        w = want[1]
        for key in path:
            w = w[key.idx] if hasattr(key, "idx") else w[key.key]
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-6, err_msg=f"{what}: {path}")


@pytest.mark.parametrize("kind", losses.RANKING_KINDS)
def test_sharded_loss_and_gradients_equal_the_dense_reference(kind):
    cfg, reps, loss_params = _loss_cfg(kind, False), _reps(), _loss_params(kind)
    want = jax.value_and_grad(lambda r, p: _dense_loss(cfg, r, p), argnums=(0, 1))(
        reps, loss_params
    )
    gathered = _sharded(cfg, reps, loss_params)
    _assert_close(gathered, want, f"{kind} gathered")
    chunked = _sharded(_loss_cfg(kind, True), reps, loss_params)
    _assert_close(chunked, want, f"{kind} chunked")
    _assert_close(chunked, (gathered[0], (gathered[1], gathered[2])), f"{kind} chunked vs gathered")
    if loss_params:
        assert all(abs(float(g)) > 1e-3 for g in jax.tree.leaves(want[1][1]))


def test_chunked_hinge_weighs_same_class_negatives_as_the_gathered_one():
    """Each chunk's classes travel with it: the weights of a chunk's negatives are the right ones."""
    rng = np.random.default_rng(3)
    probs = {s: jnp.asarray(rng.dirichlet(np.ones(3), size=N), jnp.float32) for s in losses.STREAMS}
    classes = {s: jnp.argmax(p, axis=-1) for s, p in probs.items()}
    overrides = dict(objective="both", kl_weight=0.0, same_class_weight=3.0)
    reps = _reps(1)
    # The KL parts (weight 0) need logits; they add nothing to the loss.
    for stream in reps.values():
        for rep in stream.values():
            rep["logits"] = rep["fc7"][:, :3]
    cfg = _loss_cfg("hinge", False, **overrides)
    want = jax.value_and_grad(lambda r: _dense_loss(cfg, r, {}, classes))(reps)
    want = (want[0], (want[1], {}))
    _assert_close(_sharded(cfg, reps, {}, probs), want, "gathered")
    _assert_close(_sharded(_loss_cfg("hinge", True, **overrides), reps, {}, probs), want, "chunked")


def test_a_learned_kind_without_its_scalars_is_one_clear_error():
    cfg = _loss_cfg("sigmoid", False)
    with pytest.raises(ValueError, match="loss_params"):
        losses.objective(_reps(), None, cfg)


def test_the_default_config_learns_no_scalars_and_its_state_is_unchanged():
    cfg = base_config().loss
    assert cfg.ranking_kind == "hinge" and not cfg.chunked
    assert losses.init_loss_params(cfg) == {}
    params = {"head": {"w": jnp.ones(2)}}
    assert losses.with_loss_params(params, cfg) is params
    # A learned kind whose ranking is not in use learns nothing either.
    assert losses.init_loss_params(_loss_cfg("sigmoid", False, objective="transfer")) == {}


def _batch() -> dict:
    rng = np.random.default_rng(0)
    return {
        "image_sound": {
            "image": rng.integers(0, 256, (16, 24, 24, 3), dtype=np.uint8),
            "sound": rng.normal(size=(16, 16, 9)).astype(np.float32),
        }
    }


def test_learned_scalars_train_in_the_step_and_are_checkpointed(tmp_path):
    """SigLIP's two scalars (InfoNCE's one is the same mechanism), through the chunked step."""
    kind = "sigmoid"
    cfg = _loss_cfg(kind, True, layers=("fc7",))
    model = models.create_model(
        ml_collections.ConfigDict({**helpers.TINY_MODEL, "word_head": False})
    )
    optimizer = optax.adam(1e-2)
    mesh = parallel.make_mesh()
    state = parallel.create_train_state(model, optimizer, jax.random.key(0), _batch(), mesh, cfg)
    initial = jax.device_get(state.params[losses.LOSS_PARAMS])
    for stream in losses.STREAMS:
        for name, value in losses.LEARNED_SCALARS[kind].items():
            np.testing.assert_allclose(initial[stream][name], value, rtol=1e-6)
    step = parallel.make_train_step(model, optimizer, cfg, mesh)
    state, metrics = step(state, parallel.shard_batch(_batch(), mesh))
    assert np.isfinite(metrics["loss"])
    trained = jax.device_get(state.params[losses.LOSS_PARAMS])
    # The stream in the batch moves its scalars; the absent one keeps them.
    for name in losses.LEARNED_SCALARS[kind]:
        assert abs(trained["image_sound"][name] - initial["image_sound"][name]) > 1e-3
        assert trained["image_text"][name] == initial["image_text"][name]

    manager = checkpointing.make_manager(str(tmp_path), async_save=False)
    checkpointing.save(manager, 1, state, {})
    manager.close()
    abstract = restore.abstract_train_state(model, optimizer, cfg)
    restored, _ = checkpointing.restore_directory(str(tmp_path), abstract, mesh)
    for got, want in zip(
        jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert set(restored.params[losses.LOSS_PARAMS]) == set(losses.STREAMS)
