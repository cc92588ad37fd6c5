"""Gradient accumulation over micro-batches and rematerialization of the towers: where the maths says
a step must not change, it does not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alignment import models, parallel
from tests.test_fsdp import (
    assert_close,
    initial_state,
    make_batch,
    make_model,
    replicated_run,
    step_on,
    train,
)

DEVICES = 8
# Only the KL terms: a mean of per-example losses, which k equal micro-batches average exactly.
TRANSFER = (("objective", "transfer"), ("uniformity_weight", 0.0))


def one_step(accumulate: int, loss: tuple = (), fsdp: int = 1, seed: int = 1):
    """(host params, host metrics) after one step on make_batch(seed) from the initial state."""
    state = initial_state(parallel.make_mesh(fsdp=fsdp))
    state, (metrics,) = train(state, fsdp, [seed], accumulate, loss)
    return jax.device_get(state.params), metrics


def micro_batch(batch: dict, k: int, j: int) -> dict:
    """The global batch of micro-batch j: the j-th of k equal parts of every device's rows."""

    def part(x):
        rows = x.reshape(DEVICES, k, -1, *x.shape[1:])[:, j]
        return rows.reshape(-1, *x.shape[1:])

    return jax.tree.map(part, batch)


def test_accumulated_kl_step_equals_one_step_on_the_whole_batch():
    """Four micro-batches (three of them in the scan) against one step on all the rows."""
    params, metrics = one_step(4, TRANSFER)
    expected_params, expected = one_step(1, TRANSFER)
    assert_close(params, expected_params)
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(metrics[name], expected[name], rtol=1e-5, err_msg=name)


def test_accumulated_ranking_step_is_the_mean_of_its_micro_batch_steps():
    """With the ranking terms each micro-batch ranks against its own rows only: two accumulated
    micro-batches (here with the state sharded over 'fsdp') move the parameters by the mean of two
    single replicated steps on those micro-batches (SGD's first step is linear in the gradient), and
    differ from one step on the whole batch."""
    params, metrics = one_step(2, fsdp=2)
    singles = []
    mesh, step = step_on(1)
    for j in range(2):
        batch = parallel.shard_batch(micro_batch(make_batch(1), 2, j), mesh)
        state, single = step(initial_state(mesh), batch)
        singles.append((jax.device_get(state.params), jax.device_get(single)))
    mean_params = jax.tree.map(lambda a, b: (a + b) / 2, singles[0][0], singles[1][0])
    assert_close(params, mean_params)
    np.testing.assert_allclose(
        metrics["loss"], (singles[0][1]["loss"] + singles[1][1]["loss"]) / 2, rtol=1e-5
    )
    whole = replicated_run()[1][0]  # the first step of test_fsdp's run: make_batch(1), replicated
    assert abs(float(metrics["loss"]) - float(whole["loss"])) > 1e-3


def test_rows_that_do_not_split_into_micro_batches_are_refused():
    with pytest.raises(ValueError, match="accumulate=3 micro-batches"):
        one_step(3)


def test_remat_gives_the_same_loss_and_gradients():
    """Each remat policy: the same parameters, and the same value and gradient of a loss on every
    modality's representations as without remat; the backward pass does recompute (a remat in the
    gradient's program)."""
    inputs = make_batch(2, size=4)
    image_text = inputs["image_text"]

    def loss(model):
        def total(params):
            reps = [
                model.apply({"params": params}, inputs["image_sound"]["image"], "image"),
                model.apply({"params": params}, inputs["image_sound"]["sound"], "sound"),
                model.apply(
                    {"params": params}, image_text["text"], "text", image_text["text_mask"]
                ),
            ]
            return sum(jnp.sum(jnp.sin(r["fc7"])) + jnp.sum(r["tower"] ** 2) for r in reps)

        return jax.value_and_grad(total)

    plain = make_model()
    params = models.init_params(plain, jax.random.PRNGKey(0))
    expected = jax.jit(loss(plain))(params)
    assert "remat" not in str(jax.make_jaxpr(loss(plain))(params))
    for remat in ("full", "dots"):
        model = make_model(remat=remat)
        assert_close(models.init_params(model, jax.random.PRNGKey(0)), params)
        assert_close(jax.jit(loss(model))(params), expected)
        assert "remat" in str(jax.make_jaxpr(loss(model))(params)), remat


def test_unknown_remat_is_refused():
    with pytest.raises(ValueError, match="config.model.remat='some'"):
        make_model(remat="some")
