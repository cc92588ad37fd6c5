"""Public-set retrieval on device against a plain numpy full-matrix reference; zero-shot and probe."""

import numpy as np
import pytest

from alignment import public_retrieval as br
from alignment import retrieval, zero_shot


def _reference_ranks(queries, gallery, relevant):
    """[Q, K] tie-rule ranks from the whole float32 similarity matrix; inf where relevant is -1."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    sims = (q.astype(np.float32) @ g.astype(np.float32).T).astype(np.float64)
    relevant = np.asarray(relevant).reshape(len(queries), -1)
    out = np.full(relevant.shape, np.inf)
    for i, row in enumerate(relevant):
        for k, j in enumerate(row):
            if j >= 0:
                above = np.sum(sims[i] > sims[i, j])
                tied = np.sum(sims[i] == sims[i, j])
                out[i, k] = above + (tied + 1) / 2
    return out


def _quantized(rng, n, d=64, nonzero=16):
    """[n, d] rows with `nonzero` entries of +-1: norm exactly 4, so every cosine is an exact
    multiple of 1/16 whatever order a product sums in, and ties are many and exact."""
    out = np.zeros((n, d), np.float32)
    for row in out:
        row[rng.choice(d, nonzero, replace=False)] = rng.choice([-1.0, 1.0], nonzero)
    return out


def _ap_by_list(ranking_relevance, k):
    """Standard AP@k from a 0/1 relevance list of the sorted gallery (no ties)."""
    hits, total = 0, 0.0
    for position, relevant in enumerate(ranking_relevance[:k], start=1):
        if relevant:
            hits += 1
            total += hits / position
    return total / min(int(np.sum(ranking_relevance)), k)


def test_single_match_ranks_equal_the_reference_with_a_chunk_that_does_not_divide():
    rng = np.random.default_rng(0)
    queries, gallery = rng.standard_normal((37, 8)), rng.standard_normal((23, 8))
    targets = rng.integers(0, 23, size=37)
    expected = _reference_ranks(queries, gallery, targets)
    for chunk in (5, 37, None, 1000):
        got = br.match_ranks(queries, gallery, targets, chunk=chunk)
        assert got.shape == (37, 1)
        np.testing.assert_array_equal(got, expected)
    assert 1 < np.median(expected) < 23


def test_several_true_items_and_exact_ties():
    rng = np.random.default_rng(1)
    gallery = _quantized(rng, 41)
    gallery[5] = gallery[3]  # duplicated items tie exactly
    gallery[20] = gallery[3]
    queries = _quantized(rng, 19)
    queries[4] = gallery[3]  # its three copies tie for first
    relevant = np.full((19, 5), -1)
    for i in range(19):
        count = 1 + i % 5
        relevant[i, :count] = rng.choice(41, count, replace=False)
    relevant[4, :2] = [3, 20]
    got = br.match_ranks(queries, gallery, relevant, chunk=4)
    np.testing.assert_array_equal(got, _reference_ranks(queries, gallery, relevant))
    assert got[4, 0] == got[4, 1] == 2.0  # a block of three tied for first: mean position 2
    assert np.isinf(got[0, 1:]).all()
    half = got[np.isfinite(got)] % 1
    assert (half == 0.5).any()  # the data really has even-sized tied blocks
    np.testing.assert_array_equal(br.best_ranks(got), np.min(got, axis=1))


def test_square_case_agrees_with_alignment_retrieval_ranks():
    rng = np.random.default_rng(2)
    gallery = _quantized(rng, 30)
    queries = gallery + 0.0
    queries[:10] = _quantized(rng, 10)
    got = br.match_ranks(queries, gallery, np.arange(30), chunk=7)[:, 0]
    np.testing.assert_array_equal(got, retrieval.ranks(queries, gallery))


def test_zero_vectors_rank_like_a_random_guess():
    gallery = np.random.default_rng(3).standard_normal((9, 4))
    got = br.match_ranks(np.zeros((2, 4)), gallery, np.array([0, 8]))
    np.testing.assert_array_equal(got[:, 0], [5.0, 5.0])  # all similarities 0: (9 + 1) / 2


def test_average_precision_matches_the_standard_definition_without_ties():
    rng = np.random.default_rng(4)
    for _ in range(20):
        relevance = np.zeros(30, dtype=int)
        relevance[rng.choice(30, rng.integers(1, 6), replace=False)] = 1
        positions = np.flatnonzero(relevance) + 1.0
        ranks = np.full((1, 5), np.inf)
        ranks[0, : positions.size] = rng.permutation(positions)
        assert br.average_precision_at_k(ranks, 10)[0] == pytest.approx(_ap_by_list(relevance, 10))
    # One true item: 1 / rank within the cut-off, 0 beyond it.
    one = np.array([[1.0], [4.0], [10.0], [10.5], [11.0]])
    np.testing.assert_allclose(br.average_precision_at_k(one, 10), [1, 0.25, 0.1, 0, 0])


def test_average_precision_stays_in_range_with_tied_true_items():
    # Two true items tied for first (rank 1.5 each): AP 1, as if they were first and second.
    assert br.average_precision_at_k(np.array([[1.5, 1.5]]), 10)[0] == pytest.approx(1.0)
    ranks = np.array([[2.0, 2.0, np.inf]])  # two of three tied items are true
    assert 0 < br.average_precision_at_k(ranks, 10)[0] < 1


def test_captions_of_items_and_caption_retrieval():
    owners = np.array([2, 0, 1, 0, 2, 2])
    np.testing.assert_array_equal(
        br.captions_of_items(owners, 3), [[1, 3, -1], [2, -1, -1], [0, 4, 5]]
    )
    with pytest.raises(ValueError, match="no caption"):
        br.captions_of_items(np.array([0, 0]), 2)
    rng = np.random.default_rng(5)
    items = rng.standard_normal((12, 6))
    caption_item = np.repeat(np.arange(12), 5)
    captions = items[caption_item] + 0.8 * rng.standard_normal((60, 6))
    table = br.caption_retrieval(items, captions, caption_item, modality="sound", chunk=7)
    assert set(table) == {"text->sound", "sound->text"}
    to_items = _reference_ranks(captions, items, caption_item)
    to_captions = _reference_ranks(items, captions, br.captions_of_items(caption_item, 12))
    text = table["text->sound"]
    assert text["median_rank"] == np.median(to_items)
    assert text["recall@1"] == pytest.approx(np.mean(to_items <= 1))
    assert text["map@10"] == pytest.approx(np.mean(np.where(to_items <= 10, 1 / to_items, 0)))
    sound = table["sound->text"]
    assert sound["recall@5"] == pytest.approx(np.mean(to_captions.min(axis=1) <= 5))
    assert sound["median_rank"] == np.median(to_captions.min(axis=1))
    assert 0 < sound["map@10"] <= 1 and sound["recall@10"] > text["recall@1"]


def test_match_ranks_rejects_bad_relevant_indices():
    gallery = np.ones((4, 3))
    with pytest.raises(ValueError, match="relevant"):
        br.match_ranks(np.ones((2, 3)), gallery, np.array([0, 4]))
    with pytest.raises(ValueError, match="relevant"):
        br.match_ranks(np.ones((2, 3)), gallery, np.array([[0, 1], [-1, -1]]))


def test_ensemble_normalizes_each_prompt_before_averaging():
    prompts = np.array([[[10.0, 0.0], [0.0, 1.0]]])  # one class, two prompts of unequal norms
    np.testing.assert_allclose(zero_shot.ensemble_class_embeddings(prompts), [[2**-0.5, 2**-0.5]])


def test_zero_shot_accuracy_overall_and_per_fold():
    classes = np.eye(3)
    clips = np.array([[2.0, 0, 0], [0, 0.5, 0], [0, 0, 3], [1.0, 0.9, 0], [0, 1, 1.1]])
    targets = np.array([0, 1, 2, 1, 1])
    folds = np.array([1, 1, 2, 2, 2])
    np.testing.assert_array_equal(zero_shot.zero_shot_predictions(clips, classes), [0, 1, 2, 0, 2])
    result = zero_shot.zero_shot_accuracy(clips, classes, targets, folds)
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["per_fold"] == {1: 1.0, 2: pytest.approx(1 / 3)}
    assert result["fold_mean"] == pytest.approx((1 + 1 / 3) / 2)


def test_fold_linear_probe_holds_each_fold_out():
    rng = np.random.default_rng(6)
    targets = np.repeat(np.arange(3), 20)
    features = np.eye(4)[targets] * 3 + 0.3 * rng.standard_normal((60, 4))
    folds = np.tile(np.arange(1, 5), 15)
    result = zero_shot.fold_linear_probe(features, targets, folds, 3)
    assert set(result["per_fold"]) == {1, 2, 3, 4} and result["fold_mean"] > 0.9
    # Fold 4 moves to a direction of its own, all class 0: only a probe that saw fold 4 knows that.
    features[folds == 4] = np.array([0, 0, 0, 3.0]) + 0.3 * rng.standard_normal((15, 4))
    targets[folds == 4] = 0
    moved = zero_shot.fold_linear_probe(features, targets, folds, 3)
    assert moved["per_fold"][4] < 0.7 and min(moved["per_fold"][f] for f in (1, 2, 3)) > 0.9
    with pytest.raises(ValueError, match="two folds"):
        zero_shot.fold_linear_probe(features, targets, np.ones(60), 3)
