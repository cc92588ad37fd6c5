"""Retrieval metrics against brute-force loops, and the paper's chunked protocol."""

import numpy as np
import pytest

from alignment import retrieval


def _loop_ranks(queries, gallery):
    """One query at a time, in float64; a tied true match takes the mean position of its tied block."""
    out = []
    for i, q in enumerate(queries):
        sims = [float(np.dot(q, g) / (np.linalg.norm(q) * np.linalg.norm(g))) for g in gallery]
        above = sum(s > sims[i] for s in sims)
        tied = sum(s == sims[i] for s in sims)
        out.append(above + (tied + 1) / 2)
    return np.array(out)


def _argsort_ranks(queries, gallery):
    """1 + the position of gallery[i] when the gallery is sorted by descending cosine to query i."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    order = np.argsort(-(q @ g.T), axis=1)
    return 1 + np.argmax(order == np.arange(len(q))[:, None], axis=1)


def _constant(n, d=16):
    """[n, d] identical rows; with ones every unit-row dot product is exactly 1 in float32, so the
    ties are exact whatever order the matrix product sums in."""
    return np.ones((n, d))


def _pairs(n, d=16, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, d))
    return q, q + noise * rng.standard_normal((n, d))


def test_ranks_match_brute_force():
    q, g = _pairs(40, d=4, noise=1.5)
    expected = _loop_ranks(q, g)
    np.testing.assert_array_equal(retrieval.ranks(q, g), expected)
    assert retrieval.median_rank(q, g) == np.median(expected)
    for k in (1, 5, 10):
        assert retrieval.recall_at_k(q, g, k) == pytest.approx(np.mean(expected <= k))
    assert 1 < np.median(expected) < 40  # the fixture is neither trivial nor hopeless


def test_ranks_across_similarity_blocks(monkeypatch):
    q, g = _pairs(50, noise=2.0, seed=1)
    whole = retrieval.ranks(q, g)
    monkeypatch.setattr(retrieval, "_BLOCK_ENTRIES", 7 * 50)  # blocks of 7 queries
    np.testing.assert_array_equal(retrieval.ranks(q, g), whole)


def test_ranks_are_scale_invariant():
    q, g = _pairs(30, noise=1.5, seed=2)
    scale = np.random.default_rng(3).uniform(0.1, 10.0, size=(30, 1))
    np.testing.assert_array_equal(retrieval.ranks(q * scale, g), retrieval.ranks(q, g))


def test_identical_embeddings_rank_first():
    q, _ = _pairs(500)
    assert retrieval.median_rank(q, q) == 1.0
    assert retrieval.recall_at_k(q, q, 1) == 1.0


def test_random_embeddings_rank_about_half():
    rng = np.random.default_rng(4)
    q, g = rng.standard_normal((1000, 32)), rng.standard_normal((1000, 32))
    assert 440 < retrieval.median_rank(q, g) < 560
    assert retrieval.recall_at_k(q, g, 10) < 0.03


def test_ties_with_duplicates_match_brute_force():
    q, g = _pairs(6)
    g[3] = g[1]  # query 1's true match has an exact duplicate elsewhere
    np.testing.assert_array_equal(retrieval.ranks(q, g), _loop_ranks(q, g))


def test_all_equal_embeddings_rank_in_the_middle():
    n = 7
    r = retrieval.ranks(_constant(n), _constant(n))
    assert r.dtype == np.float64
    np.testing.assert_array_equal(r, np.full(n, (n + 1) / 2))


def test_tie_with_one_other_and_nothing_above_ranks_one_and_a_half():
    q, g = _pairs(10, noise=1.0, seed=10)
    g[0] = g[4] = q[0]  # query 0's true match ties with gallery item 4 at cosine 1, the maximum
    assert retrieval.ranks(q, g)[0] == 1.5


def test_without_ties_ranks_are_the_argsort_position():
    q, g = _pairs(60, d=8, noise=1.5, seed=11)
    r = retrieval.ranks(q, g)
    np.testing.assert_array_equal(r, _argsort_ranks(q, g))
    assert len(set(r)) > 10  # the fixture spreads ranks, so a constant answer would fail


def test_constant_embedding_scores_like_random():
    assert retrieval.median_rank(_constant(1000), _constant(1000)) == 500.5


def test_zero_vectors_are_safe_and_tie_in_the_middle():
    q, g = _pairs(20, noise=0.1)
    q[0] = 0.0
    g[5] = 0.0
    r = retrieval.ranks(q, g)
    assert np.all((r >= 1) & (r <= 20))
    assert r[0] == 10.5  # all 20 similarities tie at 0
    assert np.isfinite(retrieval.median_rank(q, g))
    assert np.isfinite(retrieval.paper_median_rank(q, g, chunk=10))


def test_paper_protocol_is_mean_of_chunk_medians():
    q, g = _pairs(5000, d=8, noise=1.0, seed=5)
    medians = [
        retrieval.median_rank(q[c : c + 1000], g[c : c + 1000]) for c in range(0, 5000, 1000)
    ]
    assert retrieval.paper_median_rank(q, g) == pytest.approx(np.mean(medians))
    assert len(set(medians)) > 1  # chunks really differ, so a wrong split would show
    assert retrieval.paper_median_rank(q, g) < retrieval.median_rank(
        q, g
    )  # 1,000 vs 5,000 candidates


def test_paper_protocol_random_is_about_500():
    rng = np.random.default_rng(6)
    q, g = rng.standard_normal((5000, 16)), rng.standard_normal((5000, 16))
    assert 470 < retrieval.paper_median_rank(q, g) < 530


def test_paper_protocol_remainder_and_small_sets():
    q, g = _pairs(2500, d=8, noise=1.0, seed=7)
    expected = np.mean([retrieval.median_rank(q[c : c + 1000], g[c : c + 1000]) for c in (0, 1000)])
    assert retrieval.paper_median_rank(q, g) == pytest.approx(expected)  # the last 500 are left out
    assert retrieval.chunked_ranks(q, g).shape == (2, 1000)
    small_q, small_g = q[:300], g[:300]
    assert retrieval.paper_median_rank(small_q, small_g) == retrieval.median_rank(small_q, small_g)


def test_retrieval_table_rows():
    q, g = _pairs(300, noise=1.0, seed=8)
    t = np.random.default_rng(9).standard_normal((300, 16))
    table = retrieval.retrieval_table({"image": q, "sound": g, "text": t}, chunk=100)
    assert len(table) == 6
    row = table["image->sound"]
    assert row["median_rank"] == pytest.approx(retrieval.paper_median_rank(q, g, chunk=100))
    ranks = retrieval.chunked_ranks(q, g, chunk=100)
    for k in (1, 5, 10):
        assert row[f"recall@{k}"] == pytest.approx(np.mean(ranks <= k))
    assert table["image->text"]["median_rank"] > 3 * row["median_rank"]
    only = retrieval.retrieval_table({"image": q, "sound": g}, [("sound", "image")], chunk=100)
    assert list(only) == ["sound->image"]


def test_median_rank_difference_of_a_shift_is_exact():
    ranks = np.random.default_rng(0).uniform(1, 30, size=(2, 50))
    got = retrieval.median_rank_difference(ranks, ranks + 3.0, np.random.default_rng(1), 200)
    np.testing.assert_allclose(got, (-3.0, -3.0, -3.0))


def test_median_rank_difference_tells_chance_from_a_real_gain():
    # Two models that know only the class: the true match falls uniformly among its class's 30 items,
    # so their median ranks differ by chance; a 90% interval excludes 0 in at most about 10% of draws.
    # One that also halves the rank within the class wins beyond the draw every time.
    told_apart, wins = 0, 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = (rng.integers(1, 31, size=(1, 360)).astype(float) for _ in range(2))
        difference, low, high = retrieval.median_rank_difference(a, b, rng, 300)
        assert low <= difference <= high
        told_apart += low > 0 or high < 0
        _, _, high = retrieval.median_rank_difference(np.ceil(b / 2), b, rng, 300)
        wins += high < 0
    assert told_apart <= 4 and wins == 40


def test_median_rank_difference_is_the_paper_median_difference_and_checks_shapes():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(1, 100, size=(3, 40)), rng.uniform(1, 100, size=(3, 40))
    difference, _, _ = retrieval.median_rank_difference(a, b, rng, 100)
    expected = np.mean(np.median(a, axis=1)) - np.mean(np.median(b, axis=1))
    assert difference == pytest.approx(expected)
    with pytest.raises(ValueError, match="one shape"):
        retrieval.median_rank_difference(a, b[:2], rng)
    with pytest.raises(ValueError, match="level"):
        retrieval.median_rank_difference(a, b, rng, level=1.5)
