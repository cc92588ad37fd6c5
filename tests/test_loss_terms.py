"""Loss terms are a registry: a new term is one function and one registry line, weighted in the config and
trained by the step; combinations of terms that cannot work are refused, in one line, when the config
is checked."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from alignment import losses, models, parallel
from experiments.configs.base import base_config
from experiments.runtime import datasets
from tests import helpers

BATCH = 16  # 2 per device on 8 devices


def toy_image_energy(x: losses.TermInputs) -> dict[str, jax.Array]:
    """A toy term: the mean square of each stream's image fc7."""
    return {f"toy_{name}": jnp.mean(x.reps[name]["image"]["fc7"] ** 2) for name, _ in x.streams}


def _loss_cfg(**overrides) -> ml_collections.ConfigDict:
    cfg = base_config().loss
    cfg.update(overrides)
    return cfg


def _model_cfg(**overrides) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({**helpers.TINY_MODEL, "word_head": False, **overrides})


def _batch() -> dict:
    rng = np.random.default_rng(0)
    return {
        "image_sound": {
            "image": rng.integers(0, 256, (BATCH, 24, 24, 3), dtype=np.uint8),
            "sound": rng.normal(size=(BATCH, 16, 9)).astype(np.float32),
        }
    }


def _one_step(loss_cfg: ml_collections.ConfigDict) -> tuple[dict, dict]:
    """(params, metrics) after one SGD step of the tiny model from a fixed start."""
    model = models.create_model(_model_cfg())
    optimizer = optax.sgd(0.1)
    mesh = parallel.make_mesh()
    state = parallel.create_train_state(model, optimizer, jax.random.key(0), _batch(), mesh)
    step = parallel.make_train_step(model, optimizer, loss_cfg, mesh)
    state, metrics = step(state, parallel.shard_batch(_batch(), mesh))
    return jax.device_get(state.params), jax.device_get(metrics)


def test_a_new_term_is_a_function_and_a_registry_line(monkeypatch):
    monkeypatch.setitem(losses.TERMS, "toy", toy_image_energy)
    with pytest.raises(ValueError, match="toy_weight"):
        losses.check_config(_loss_cfg(objective="ranking"), _model_cfg())
    off, on = (_loss_cfg(objective="ranking", toy_weight=w) for w in (0.0, 2.0))
    for cfg in (off, on):
        losses.check_config(cfg, _model_cfg())
    assert losses.terms_in_use(on) == ("ranking", "toy")

    params_off, metrics_off = _one_step(off)
    params_on, metrics_on = _one_step(on)
    assert "toy_image_sound" not in metrics_off
    np.testing.assert_allclose(
        metrics_on["loss"], metrics_off["loss"] + 2.0 * metrics_on["toy_image_sound"], rtol=1e-5
    )
    # The toy term reads the image's fc7 only: it moves the vision tower and the head, not the sound
    # tower, whose gradient comes from the ranking term alone.
    for leaf_off, leaf_on in zip(
        jax.tree.leaves(params_off["sound"]), jax.tree.leaves(params_on["sound"]), strict=True
    ):
        np.testing.assert_array_equal(leaf_off, leaf_on)
    for part in ("vision", "head"):
        moved = [
            not np.array_equal(a, b)
            for a, b in zip(
                jax.tree.leaves(params_off[part]), jax.tree.leaves(params_on[part]), strict=True
            )
        ]
        assert any(moved), part


REFUSED = {
    "unknown objective": (dict(objective="contrastive"), "objective"),
    "unknown ranking kind": (dict(ranking_kind="triplet"), "ranking_kind"),
    "unknown stream": (dict(same_class_streams=("image_video",)), "image_video"),
    "negative weight": (dict(uniformity_weight=-1.0), "uniformity_weight"),
    "same class without the teacher": (
        dict(objective="ranking", same_class_weight=3.0),
        "same_class_weight",
    ),
    "same class without the ranking": (
        dict(objective="transfer", same_class_weight=3.0),
        "same_class_weight",
    ),
    "same class with infonce": (
        dict(ranking_kind="infonce", same_class_weight=3.0),
        "same_class_weight",
    ),
    "words without the word head": (dict(words_weight=1.0), "word_head"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_combinations_that_cannot_work_are_refused_in_one_line(case):
    overrides, message = REFUSED[case]
    with pytest.raises(ValueError, match=message) as err:
        losses.check_config(_loss_cfg(**overrides), _model_cfg())
    assert "\n" not in str(err.value)


def test_the_working_combinations_pass():
    for objective in losses.OBJECTIVES:
        for kind in losses.RANKING_KINDS:
            losses.check_config(_loss_cfg(objective=objective, ranking_kind=kind), _model_cfg())
    losses.check_config(
        _loss_cfg(same_class_weight=3.0, words_weight=1.0, uniformity_weight=0.5),
        _model_cfg(word_head=True),
    )


def test_resolving_a_config_against_its_data_set_checks_it(tmp_path):
    """Every training and evaluation path resolves its config: a bad combination stops there."""
    config = base_config()
    config.loss.same_class_weight = 3.0
    config.loss.objective = "ranking"
    builder = types.SimpleNamespace(data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="same_class_weight"):
        datasets.resolve_config(config, builder)
