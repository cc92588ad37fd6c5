"""Linear baselines recover planted linear relations, directly and through a pivot, and nothing else."""

import numpy as np
import pytest

from alignment import baselines, retrieval

METHODS = baselines.METHODS


def _mix(z, width, noise, rng):
    return z @ rng.standard_normal((z.shape[1], width)) + noise * rng.standard_normal(
        (len(z), width)
    )


@pytest.mark.parametrize("method", METHODS)
def test_planted_relation_is_recovered(method):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1200, 8))
    x, y = _mix(z, 20, 0.05, rng), _mix(z, 30, 0.05, rng)
    space = baselines.fit_pair(method, x[:1000], y[:1000], dim=8)
    ex, ey = space.embed_x(x[1000:]), space.embed_y(y[1000:])
    assert ex.shape == ey.shape
    assert retrieval.median_rank(ex, ey) == 1.0
    assert retrieval.median_rank(ey, ex) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_independent_features_retrieve_at_random(method):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((1200, 20)), rng.standard_normal((1200, 30))
    space = baselines.fit_pair(method, x[:1000], y[:1000])
    assert 60 < retrieval.median_rank(space.embed_x(x[1000:]), space.embed_y(y[1000:])) < 140


@pytest.mark.parametrize("method", METHODS)
def test_wide_features_are_reduced_first(method):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((700, 6))
    x, y = _mix(z, 90, 0.05, rng), _mix(z, 70, 0.05, rng)
    space = baselines.fit_pair(method, x[:500], y[:500], dim=6, max_dim=12)
    if method != "regression":
        assert space.x.matrix.shape == (90, 6)
    assert retrieval.median_rank(space.embed_x(x[500:]), space.embed_y(y[500:])) == 1.0


def test_randomized_principal_components_match_exact():
    rng = np.random.default_rng(3)
    x = _mix(rng.standard_normal((400, 5)), 60, 0.01, rng)
    x -= x.mean(axis=0)
    exact_vecs, exact_vals = baselines._principal_components(x, max_dim=60)
    fast_vecs, fast_vals = baselines._principal_components(x, max_dim=5)
    np.testing.assert_allclose(fast_vals, exact_vals[:5], rtol=1e-6)
    # Same subspace: projections onto the two bases agree.
    np.testing.assert_allclose(
        fast_vecs @ fast_vecs.T, exact_vecs[:, :5] @ exact_vecs[:, :5].T, atol=1e-5
    )


def test_canonical_correlations_and_normalized_weights():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2000, 3))
    x = np.concatenate([_mix(z, 6, 0.05, rng), rng.standard_normal((2000, 4))], axis=1)
    y = np.concatenate([_mix(z, 5, 0.05, rng), rng.standard_normal((2000, 4))], axis=1)
    plain = baselines.fit_pair("cca", x, y, dim=None)
    corr = plain.correlations
    assert np.all(np.diff(corr) <= 1e-12) and np.all((corr >= 0) & (corr <= 1))
    assert np.all(corr[:3] > 0.95) and np.all(corr[3:] < 0.2)
    weighted = baselines.fit_pair("normalized_cca", x, y, dim=None, power=4.0)
    column_ratio = np.linalg.norm(weighted.x.matrix, axis=0) / np.linalg.norm(
        plain.x.matrix, axis=0
    )
    np.testing.assert_allclose(column_ratio, corr**4, rtol=1e-6)


def _bridge_world(seed, related=True):
    """A shared latent behind pivot, a and b; a-pairs and b-pairs are disjoint training items."""
    rng = np.random.default_rng(seed)
    pa_z, pb_z, test_z = (rng.standard_normal((n, 6)) for n in (1000, 1000, 200))
    mixes = {
        name: rng.standard_normal((6, width)) for name, width in (("p", 40), ("a", 25), ("b", 35))
    }
    # Far-from-zero means: a side left uncentered would swamp the cosines.
    means = {name: 5.0 * rng.standard_normal(m.shape[1]) for name, m in mixes.items()}

    def view(name, z):
        noise = 0.05 * rng.standard_normal((len(z), mixes[name].shape[1]))
        return z @ mixes[name] + means[name] + noise

    test_b = view("b", test_z) if related else view("b", rng.standard_normal((200, 6)))
    return (
        view("p", pa_z),
        view("a", pa_z),
        view("p", pb_z),
        view("b", pb_z),
        view("a", test_z),
        test_b,
    )


@pytest.mark.parametrize("method", METHODS)
def test_bridge_through_a_shared_latent(method):
    pa, a, pb, b, test_a, test_b = _bridge_world(5)
    space = baselines.fit_bridge(method, pa, a, pb, b, dim=6)
    ea, eb = space.embed_x(test_a), space.embed_y(test_b)
    assert ea.shape == eb.shape
    assert retrieval.median_rank(ea, eb) == 1.0
    assert retrieval.median_rank(eb, ea) == 1.0


@pytest.mark.parametrize("method", METHODS)
def test_bridge_of_unrelated_test_items_is_random(method):
    pa, a, pb, b, test_a, test_b = _bridge_world(6, related=False)
    space = baselines.fit_bridge(method, pa, a, pb, b, dim=6)
    assert 60 < retrieval.median_rank(space.embed_x(test_a), space.embed_y(test_b)) < 140


def test_unknown_method_is_rejected():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="unknown method"):
        baselines.fit_pair("pls", x, x)
    with pytest.raises(ValueError, match="unknown method"):
        baselines.fit_bridge("pls", x, x, x, x)
