"""The losses equal brute-force loops of their definitions, stay finite on degenerate inputs, and combine
into the configured objective."""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alignment import losses
from alignment.models.text import mean_words
from experiments.configs.base import base_config


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return 0.0 if norms == 0 else float(a @ b / norms)


def _ranking_loop(anchor: np.ndarray, positive: np.ndarray, margin: float) -> float:
    n = len(anchor)
    total = 0.0
    for i, j in itertools.product(range(n), range(n)):
        if i != j:
            pos = _cosine(anchor[i], positive[i])
            total += max(0.0, margin - pos + _cosine(anchor[i], positive[j]))
    return total / n


def _kl_loop(p: np.ndarray, logits: np.ndarray) -> float:
    total = 0.0
    for p_i, s_i in zip(p, logits, strict=True):
        log_q = s_i - s_i.max() - np.log(np.sum(np.exp(s_i - s_i.max())))
        total += sum(pk * (np.log(pk) - lq) for pk, lq in zip(p_i, log_q, strict=True) if pk > 0)
    return total / len(p)


def _random_pairs(seed: int, n: int = 7, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs; from n = 5 on, one anchor and one positive are zero vectors (cosine 0, not NaN)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    if n >= 5:
        a[2] = 0.0
        b[4] = 0.0
    return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize("margin", [0.1, 0.5, 2.0])
def test_ranking_loss_equals_loop(margin):
    a, b = _random_pairs(0)
    got = losses.ranking_loss(a, b, margin)
    np.testing.assert_allclose(got, _ranking_loop(a, b, margin), rtol=1e-5)


def test_weighted_ranking_loss_scales_each_negative():
    a, b = _random_pairs(5, n=6)
    weights = np.random.default_rng(5).uniform(0.0, 3.0, size=(6, 6)).astype(np.float32)
    expected = 0.0
    for i, j in itertools.product(range(6), range(6)):
        if i != j:
            hinge = 0.3 - _cosine(a[i], b[i]) + _cosine(a[i], b[j])
            expected += weights[i, j] * max(0.0, hinge)
    got = losses.ranking_loss(a, b, 0.3, weights=weights)
    np.testing.assert_allclose(got, expected / 6, rtol=1e-5)
    ones = losses.ranking_loss(a, b, 0.3, weights=np.ones((6, 6), np.float32))
    np.testing.assert_allclose(ones, losses.ranking_loss(a, b, 0.3), rtol=1e-6)


def test_same_class_weights_mark_the_anchor_class():
    got = losses.same_class_weights(jnp.array([0, 2]), jnp.array([0, 1, 2, 0]), 3.0)
    np.testing.assert_array_equal(got, [[3, 1, 1, 3], [1, 1, 3, 1]])


def test_ranking_loss_batch_of_one_is_zero():
    a, b = _random_pairs(1, n=1)
    assert float(losses.ranking_loss(a, b, 0.2)) == 0.0


def test_ranking_loss_with_global_candidates_splits_over_devices():
    """Local anchors against the whole batch of candidates, averaged over shards, equal the full loss."""
    a, b = _random_pairs(2, n=8)
    shards = [
        losses.ranking_loss(a[k : k + 2], b[k : k + 2], 0.3, candidates=b, offset=k)
        for k in range(0, 8, 2)
    ]
    np.testing.assert_allclose(np.mean(shards), losses.ranking_loss(a, b, 0.3), rtol=1e-6)


def test_gradients_are_finite_at_zero_vectors():
    a, b = _random_pairs(3)
    a[:] = 0.0
    grads = jax.grad(lambda x, y: losses.ranking_loss(x, y, 0.2), argnums=(0, 1))(a, b)
    nce_grads = jax.grad(lambda x, y: losses.info_nce(x, y, 0.1), argnums=(0, 1))(a, b)
    for g in (*grads, *nce_grads):
        assert np.all(np.isfinite(g))


def test_kl_transfer_equals_loop_with_exact_zeros():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(6), size=5).astype(np.float32)
    p[0] = [0, 0, 1, 0, 0, 0]  # one-hot: 0 log 0 terms
    p[1, :3] = 0.0
    p[1] /= p[1].sum()
    logits = rng.normal(size=(5, 6)).astype(np.float32) * 3
    np.testing.assert_allclose(losses.kl_transfer(p, logits), _kl_loop(p, logits), rtol=1e-5)
    grads = jax.grad(losses.kl_transfer, argnums=(0, 1))(jnp.asarray(p), jnp.asarray(logits))
    for g in grads:
        assert np.all(np.isfinite(g))


def test_kl_transfer_is_zero_when_student_matches_teacher():
    logits = np.random.default_rng(5).normal(size=(3, 4)).astype(np.float32)
    probs = jax.nn.softmax(logits)
    np.testing.assert_allclose(losses.kl_transfer(probs, logits), 0.0, atol=1e-6)


def test_info_nce_equals_cross_entropy_and_is_symmetric():
    a, b = _random_pairs(6)
    t = 0.2

    def direction(x, y):
        nx = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        ny = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-30)
        logits = nx @ ny.T / t
        log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -np.mean(np.diag(log_probs))

    expected = 0.5 * (direction(a, b) + direction(b, a))
    np.testing.assert_allclose(losses.info_nce(a, b, t), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.info_nce(a, b, t), losses.info_nce(b, a, t), rtol=1e-6)
    aligned = np.eye(5, dtype=np.float32)
    assert float(losses.info_nce(aligned, 2 * aligned, 0.01)) < 1e-3


def _loss_cfg(objective: str, kind: str = "hinge") -> ml_collections.ConfigDict:
    """The default config.loss (margin 0.2) with these weights, two layers and `objective`."""
    cfg = base_config().loss
    cfg.update(
        objective=objective,
        kl_weight=2.0,
        ranking_weight=0.5,
        layers=("fc6", "fc7"),
        ranking_kind=kind,
    )
    return cfg


def _reps(seed: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)

    def rep():
        return {k: rng.normal(size=(4, 3)).astype(np.float32) for k in ("fc6", "fc7", "logits")}

    reps = {
        "image_sound": {"image": rep(), "sound": rep()},
        "image_text": {"image": rep(), "text": rep()},
    }
    probs = {s: rng.dirichlet(np.ones(3), size=4).astype(np.float32) for s in reps}
    return reps, probs


def test_objective_combines_named_terms():
    reps, probs = _reps(7)
    loss, m = losses.objective(reps, probs, _loss_cfg("both"))
    kl_image = 0.5 * sum(losses.kl_transfer(probs[s], reps[s]["image"]["logits"]) for s in reps)
    np.testing.assert_allclose(m["kl_image"], kl_image, rtol=1e-6)
    np.testing.assert_allclose(
        m["kl_sound"],
        losses.kl_transfer(probs["image_sound"], reps["image_sound"]["sound"]["logits"]),
    )
    text, image = reps["image_text"]["text"], reps["image_text"]["image"]
    expected_txt_img = sum(losses.ranking_loss(text[k], image[k], 0.2) for k in ("fc6", "fc7"))
    np.testing.assert_allclose(m["rank_txt_img"], expected_txt_img, rtol=1e-6)
    kl = m["kl_image"] + m["kl_sound"] + m["kl_text"]
    rank = m["rank_img_snd"] + m["rank_snd_img"] + m["rank_img_txt"] + m["rank_txt_img"]
    np.testing.assert_allclose(loss, 2.0 * kl + 0.5 * rank, rtol=1e-6)
    np.testing.assert_allclose(m["loss"], loss)


def test_objective_terms_follow_the_objective():
    reps, probs = _reps(8)
    _, transfer = losses.objective(reps, probs, _loss_cfg("transfer"))
    assert set(transfer) == {"kl_image", "kl_sound", "kl_text", "loss"}
    _, ranking = losses.objective(reps, None, _loss_cfg("ranking", "infonce"))
    assert set(ranking) == {"rank_img_snd", "rank_snd_img", "rank_img_txt", "rank_txt_img", "loss"}
    _, text_only = losses.objective({"image_text": reps["image_text"]}, probs, _loss_cfg("both"))
    assert "kl_sound" not in text_only and "rank_img_snd" not in text_only


def test_objective_weighs_same_class_negatives_by_the_teacher_class():
    reps, probs = _reps(10)
    cfg = _loss_cfg("both")
    _, plain = losses.objective(reps, probs, cfg)
    cfg.same_class_weight = 1.0
    _, unit = losses.objective(reps, probs, cfg)
    np.testing.assert_allclose(unit["rank_img_txt"], plain["rank_img_txt"], rtol=1e-6)
    cfg.same_class_weight = 3.0
    _, m = losses.objective(reps, probs, cfg)
    for stream, (first, second) in (
        ("image_sound", ("img", "snd")),
        ("image_text", ("img", "txt")),
    ):
        classes = np.argmax(probs[stream], axis=-1)
        weights = losses.same_class_weights(classes, classes, 3.0)
        a, b = (reps[stream][m_] for m_ in losses.STREAMS[stream])
        expected = sum(
            losses.ranking_loss(a[k], b[k], 0.2, weights=weights) for k in ("fc6", "fc7")
        )
        np.testing.assert_allclose(m[f"rank_{first}_{second}"], expected, rtol=1e-6)
    assert m["rank_img_txt"] >= plain["rank_img_txt"]


def test_same_class_weight_weighs_only_the_named_streams():
    reps, probs = _reps(11)
    cfg = _loss_cfg("both")
    _, plain = losses.objective(reps, probs, cfg)
    cfg.same_class_weight = 3.0
    _, both = losses.objective(reps, probs, cfg)
    cfg.same_class_streams = ("image_text",)
    _, text_only = losses.objective(reps, probs, cfg)
    for key in ("rank_img_snd", "rank_snd_img"):
        np.testing.assert_allclose(text_only[key], plain[key], rtol=1e-6)
        assert not np.isclose(both[key], plain[key])
    for key in ("rank_img_txt", "rank_txt_img"):
        np.testing.assert_allclose(text_only[key], both[key], rtol=1e-6)


def _uniformity_loop(x: np.ndarray, t: float) -> float:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    per_anchor = []
    for i in range(len(x)):
        others = [np.exp(-t * np.sum((unit[i] - unit[j]) ** 2)) for j in range(len(x)) if j != i]
        per_anchor.append(np.log(np.mean(others)))
    return float(np.mean(per_anchor))


def test_uniformity_equals_loop_and_is_highest_when_items_coincide():
    x = np.random.default_rng(3).normal(size=(6, 5)).astype(np.float32)
    np.testing.assert_allclose(losses.uniformity(x), _uniformity_loop(x, 2.0), rtol=1e-5)
    same = np.tile(x[:1], (6, 1))
    # 2t(1 - cos) of a unit row with itself, t = 2: 4 x a few float32 ulps of 1 (this row: 9.5e-7)
    np.testing.assert_allclose(losses.uniformity(same), 0.0, atol=4e-6)
    assert float(losses.uniformity(x)) < -0.5  # spread rows score lower


def test_uniformity_with_global_candidates_splits_over_devices():
    x, _ = _random_pairs(4, n=8)
    shards = [losses.uniformity(x[k : k + 2], candidates=x, offset=k) for k in range(0, 8, 2)]
    np.testing.assert_allclose(np.mean(shards), losses.uniformity(x), rtol=1e-6)


def test_objective_adds_uniformity_only_when_weighted():
    reps, probs = _reps(9)
    cfg = _loss_cfg("both")
    base, plain = losses.objective(reps, probs, cfg)
    assert not any(k.startswith("unif_") for k in plain)
    cfg.uniformity_weight = 0.5
    loss, m = losses.objective(reps, probs, cfg)
    text = reps["image_text"]["text"]
    np.testing.assert_allclose(
        m["unif_text"], np.mean([losses.uniformity(text[k]) for k in ("fc6", "fc7")]), rtol=1e-6
    )
    image = [reps[s]["image"][k] for s in reps for k in ("fc6", "fc7")]
    np.testing.assert_allclose(
        m["unif_image"], np.mean([losses.uniformity(r) for r in image]), rtol=1e-6
    )
    unif = m["unif_image"] + m["unif_sound"] + m["unif_text"]
    np.testing.assert_allclose(loss, base + 0.5 * unif, rtol=1e-5)


def test_mean_words_averages_only_the_kept_words():
    words = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    words[0, 1] = np.nan  # padding may hold anything
    mask = np.array([[True, False, True], [False, False, False]])
    np.testing.assert_allclose(mean_words(words, mask), [[2.0, 3.0], [0.0, 0.0]])


def test_words_ranking_ranks_centred_captions_and_splits_over_devices():
    predicted, captions = _random_pairs(5, n=8)
    centred = captions - captions.mean(axis=0)
    whole = losses.words_ranking(predicted, captions, 0.2)
    np.testing.assert_allclose(whole, _ranking_loop(predicted, centred, 0.2), rtol=1e-5)
    # Shifting every caption by one vector changes nothing: what all captions share is removed.
    shifted = losses.words_ranking(predicted, captions + 3.0, 0.2)
    np.testing.assert_allclose(shifted, whole, rtol=1e-5)

    shards = [
        losses.words_ranking(
            predicted[k : k + 2], captions[k : k + 2], 0.2, candidates=captions, offset=k
        )
        for k in range(0, 8, 2)
    ]
    np.testing.assert_allclose(np.mean(shards), whole, rtol=1e-6)


def test_objective_adds_caption_words_only_when_weighted():
    reps, probs = _reps(11)
    rng = np.random.default_rng(12)
    words = {"image_text": rng.normal(size=(4, 3)).astype(np.float32)}
    cfg = _loss_cfg("both")
    base, plain = losses.objective(reps, probs, cfg, caption_words=words)
    assert not any(k.startswith("words_") for k in plain)
    cfg.words_weight = 0.5
    for modality in ("image", "text"):
        reps["image_text"][modality]["words"] = rng.normal(size=(4, 3)).astype(np.float32)
    loss, m = losses.objective(reps, probs, cfg, caption_words=words)
    pair = reps["image_text"]
    for short, modality in (("img", "image"), ("txt", "text")):
        expected = losses.words_ranking(pair[modality]["words"], words["image_text"], 0.2)
        np.testing.assert_allclose(m[f"words_{short}"], expected, rtol=1e-6)
    assert "words_snd" not in m  # the sound stream has no caption
    np.testing.assert_allclose(loss, base + 0.5 * (m["words_img"] + m["words_txt"]), rtol=1e-5)
