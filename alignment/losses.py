"""The paper's losses: model transfer (KL to the teacher) and cross-modal ranking, plus InfoNCE,
uniformity and the ranking of predicted caption words.

Every loss is written for one device's share of the batch: the anchors are local, and `candidates`
(with `offset`, the position of the local positives inside them) may be the whole global batch, so the
mean of the per-device losses equals the loss on the global batch.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from alignment.streams import STREAMS

# Squared-norm floor: zero vectors normalize to zero (cosine 0) with a finite gradient.
_NORM_EPS = 1e-12

_SHORT = {"image": "img", "sound": "snd", "text": "txt"}
OBJECTIVES = ("transfer", "ranking", "both")

Gather = Callable[[jax.Array], tuple[jax.Array, Any]]


def l2_normalize(x: jax.Array) -> jax.Array:
    """[N, D] -> rows of unit norm (zero rows stay zero), float32."""
    x = x.astype(jnp.float32)
    return x * lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + _NORM_EPS)


def _cosines(anchor: jax.Array, candidates: jax.Array) -> jax.Array:
    # HIGHEST: on TPUs the default float32 matmul rounds through bfloat16.
    return jnp.matmul(anchor, candidates.T, precision=lax.Precision.HIGHEST)


def _is_positive(num_anchors: int, num_candidates: int, offset: Any) -> jax.Array:
    """[n, N] True where candidate j is anchor i's own pair (j == offset + i)."""
    return jnp.arange(num_candidates)[None, :] == (offset + jnp.arange(num_anchors))[:, None]


def ranking_loss(
    anchor: jax.Array,
    positive: jax.Array,
    margin: float,
    *,
    candidates: jax.Array | None = None,
    offset: Any = 0,
    weights: jax.Array | None = None,
) -> jax.Array:
    """(1/N) sum_i sum_{j != i} w_ij max(0, margin - cos(a_i, p_i) + cos(a_i, p_j)), one direction.

    anchor, positive: [N, D] unnormalized pairs. candidates: [M, D] negatives containing the positives at
    rows offset..offset+N (default: the positives themselves). weights: [N, M] w_ij (default: all 1,
    the paper's loss). Returns a float32 scalar.
    """
    a, p = l2_normalize(anchor), l2_normalize(positive)
    c = p if candidates is None else l2_normalize(candidates)
    matched = jnp.sum(a * p, axis=-1)
    hinge = jax.nn.relu(margin - matched[:, None] + _cosines(a, c))
    hinge = jnp.where(_is_positive(a.shape[0], c.shape[0], offset), 0.0, hinge)
    if weights is not None:
        hinge = hinge * weights
    return jnp.sum(hinge) / a.shape[0]


def same_class_weights(
    classes: jax.Array, candidate_classes: jax.Array, weight: float
) -> jax.Array:
    """[N] and [M] class indices -> [N, M] float32: `weight` where the classes match, else 1."""
    same = classes[:, None] == candidate_classes[None, :]
    return jnp.where(same, jnp.float32(weight), jnp.float32(1.0))


def info_nce_direction(
    anchor: jax.Array,
    positive: jax.Array,
    temperature: float,
    *,
    candidates: jax.Array | None = None,
    offset: Any = 0,
) -> jax.Array:
    """mean_i -log softmax_j(cos(a_i, c_j) / temperature)[i's positive]; shapes as in ranking_loss."""
    a = l2_normalize(anchor)
    c = l2_normalize(positive if candidates is None else candidates)
    log_probs = jax.nn.log_softmax(_cosines(a, c) / temperature, axis=-1)
    picked = jnp.where(_is_positive(a.shape[0], c.shape[0], offset), log_probs, 0.0)
    return -jnp.sum(picked) / a.shape[0]


def info_nce(a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
    """Symmetric InfoNCE between paired rows of a and b ([N, D] each): mean of a->b and b->a."""
    return 0.5 * (info_nce_direction(a, b, temperature) + info_nce_direction(b, a, temperature))


def uniformity(
    x: jax.Array, *, candidates: jax.Array | None = None, offset: Any = 0, t: float = 2.0
) -> jax.Array:
    """mean_i log mean_{j != i} exp(-t ||x_i - x_j||^2) over unit-normalized rows (Wang and Isola, 2020).

    x: [N, D] local rows; candidates: [M, D] rows containing x at offset..offset+N (default: x). Lower
    is more spread out; it is smallest when no two rows coincide. Averaging over anchors (not over all
    pairs) keeps the mean of per-device values equal to the global batch's. Float32 scalar.
    """
    a = l2_normalize(x)
    c = a if candidates is None else l2_normalize(candidates)
    squared = 2.0 - 2.0 * _cosines(a, c)  # ||a - c||^2 of unit rows
    others = ~_is_positive(a.shape[0], c.shape[0], offset)
    log_mean = jax.nn.logsumexp(-t * squared, axis=-1, where=others) - jnp.log(c.shape[0] - 1.0)
    return jnp.mean(log_mean)


def words_ranking(
    predicted: jax.Array,
    captions: jax.Array,
    margin: float,
    *,
    candidates: jax.Array | None = None,
    offset: Any = 0,
) -> jax.Array:
    """ranking_loss of each row's predicted caption vector against the batch's captions, centred.

    predicted: [N, D] the word head's output for the local rows; captions: [N, D] their captions' mean
    word vectors (models.text.mean_words); candidates: [M, D] the whole batch's, holding captions at
    offset..offset+N (default: captions). The captions are fixed targets (no tower reads them), centred
    on the candidates' mean so that what all captions share does not dominate the cosines. Float32.
    """
    c = captions if candidates is None else candidates
    centre = jnp.mean(c, axis=0)
    return ranking_loss(predicted, captions - centre, margin, candidates=c - centre, offset=offset)


def kl_transfer(teacher_probs: jax.Array, student_logits: jax.Array) -> jax.Array:
    """mean_i KL(p_i || softmax(s_i)) = mean_i sum_k p_ik (log p_ik - log_softmax(s)_ik), 0 log 0 = 0.

    teacher_probs: [N, C] distributions (exact zeros allowed); student_logits: [N, C]. Float32 scalar.
    """
    p = teacher_probs.astype(jnp.float32)
    log_q = jax.nn.log_softmax(student_logits.astype(jnp.float32), axis=-1)
    present = p > 0
    # The inner where keeps log's gradient finite at p = 0.
    log_p = jnp.log(jnp.where(present, p, 1.0))
    return jnp.mean(jnp.sum(jnp.where(present, p * (log_p - log_q), 0.0), axis=-1))


def _local(x: jax.Array) -> tuple[jax.Array, int]:
    return x, 0


def objective(
    reps: Mapping[str, Mapping[str, Mapping[str, jax.Array]]],
    teacher_probs: Mapping[str, jax.Array] | None,
    loss_cfg: Any,
    gather: Gather | None = None,
    caption_words: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training loss of config.loss over the pair streams present in `reps`.

    reps: {"image_sound": {"image": r, "sound": r}, "image_text": {"image": r, "text": r}} where each r is
      the network's dict of representations [N, dim]; either stream may be absent.
    teacher_probs: {stream: [N, C]} teacher distributions of each stream's images (transfer and both).
    gather: x -> (candidates, offset) giving the whole batch of negatives; default: the local batch.

    transfer: kl_weight * (kl_image + kl_sound + kl_text), each student against the teacher on the paired
      image; kl_image averages the image student's KL over both streams.
    ranking: ranking_weight * (rank_img_snd + rank_snd_img + rank_img_txt + rank_txt_img), each summed over
      loss_cfg.layers; ranking_kind "hinge" (margin) or "infonce" (temperature, one direction per term).
    both: the weighted sum of the two.
    caption_words: {stream: [N, word_dim]} the mean word vectors of a stream's captions
      (models.text.mean_words).
    loss_cfg.uniformity_weight > 0 adds that weight times the uniformity of each modality's rows at
      loss_cfg.layers ("unif_image", "unif_sound", "unif_text"; the image's averaged over both streams):
      it keeps items of one class from collapsing onto one point, where the ranking loss's push between
      a pair and a same-class negative cancels, so what captions say beyond the class can be aligned.
    loss_cfg.words_weight > 0 (needs the model's word head, reps[...]["words"]) adds that weight times
      words_ranking of the image and of the text of each stream in caption_words ("words_img",
      "words_txt"): both must predict their caption's own words, not only its class, from fc7. The
      captions here are fixed, so unlike the ranking between the towers this pull does not vanish when
      both towers have collapsed the items of a class onto one point.
    loss_cfg.same_class_weight (default 1; objective "both", hinge) weighs each negative of the same
      class as the anchor's pair (the teacher's most probable class of each image) in the ranking
      terms: above 1, the pairs must be told apart from their own class's items, not only from the
      other classes (which the KL terms already separate). Only the streams in
      loss_cfg.same_class_streams (default both) are weighed: a stream whose pairs share nothing
      within a class (a dog's bark and a photo of another dog) has nothing there to tell apart.
    Returns (loss, metrics with each term and "loss").
    """
    if loss_cfg.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {loss_cfg.objective!r}; expected one of {OBJECTIVES}")
    same_class_weight = getattr(loss_cfg, "same_class_weight", 1.0)
    if same_class_weight != 1.0 and (
        loss_cfg.objective != "both" or loss_cfg.ranking_kind != "hinge"
    ):
        raise ValueError(
            "loss.same_class_weight needs the teacher's classes and the hinge: set "
            "--config.loss.objective=both and --config.loss.ranking_kind=hinge, or the weight to 1"
        )
    same_class_streams = tuple(getattr(loss_cfg, "same_class_streams", tuple(STREAMS)))
    unknown = sorted(set(same_class_streams) - set(STREAMS))
    if unknown:
        raise ValueError(
            f"loss.same_class_streams names unknown streams {unknown}; expected some of {tuple(STREAMS)}"
        )
    gather = gather or _local
    streams = [(name, pair) for name, pair in STREAMS.items() if name in reps]
    terms: dict[str, jax.Array] = {}
    loss = jnp.zeros((), jnp.float32)

    if loss_cfg.objective in ("transfer", "both"):
        if teacher_probs is None:
            raise ValueError("the transfer objective needs teacher_probs")
        image_kls = []
        for name, (image, other) in streams:
            probs = teacher_probs[name]
            image_kls.append(kl_transfer(probs, reps[name][image]["logits"]))
            terms[f"kl_{other}"] = kl_transfer(probs, reps[name][other]["logits"])
        terms["kl_image"] = jnp.mean(jnp.stack(image_kls))
        kl_terms = [terms[f"kl_{m}"] for m in ("image", "sound", "text") if f"kl_{m}" in terms]
        loss = loss + loss_cfg.kl_weight * sum(kl_terms)

    if loss_cfg.objective in ("ranking", "both"):
        rank_terms = []
        for name, pair in streams:
            weights = None
            if (
                same_class_weight != 1.0
                and teacher_probs is not None
                and name in same_class_streams
            ):
                classes = jnp.argmax(teacher_probs[name], axis=-1)
                weights = same_class_weights(classes, gather(classes)[0], same_class_weight)
            for anchor_modality, positive_modality in (pair, pair[::-1]):
                key = f"rank_{_SHORT[anchor_modality]}_{_SHORT[positive_modality]}"
                per_layer = [
                    _ranking_term(
                        reps[name][anchor_modality][layer],
                        reps[name][positive_modality][layer],
                        loss_cfg,
                        gather,
                        weights,
                    )
                    for layer in loss_cfg.layers
                ]
                terms[key] = jnp.sum(jnp.stack(per_layer))
                rank_terms.append(terms[key])
        loss = loss + loss_cfg.ranking_weight * sum(rank_terms)

    if getattr(loss_cfg, "uniformity_weight", 0.0) > 0:
        per_modality: dict[str, list[jax.Array]] = {}
        for name, pair in streams:
            for modality in pair:
                for layer in loss_cfg.layers:
                    rows = reps[name][modality][layer]
                    candidates, offset = gather(rows)
                    value = uniformity(rows, candidates=candidates, offset=offset)
                    per_modality.setdefault(modality, []).append(value)
        for modality, values in per_modality.items():
            terms[f"unif_{modality}"] = jnp.mean(jnp.stack(values))
        unif_terms = [terms[f"unif_{m}"] for m in per_modality]
        loss = loss + loss_cfg.uniformity_weight * sum(unif_terms)

    if getattr(loss_cfg, "words_weight", 0.0) > 0:
        word_terms = []
        for name, pair in streams:
            if caption_words is None or name not in caption_words:
                continue
            captions = caption_words[name]
            candidates, offset = gather(captions)  # once for both modalities of the stream
            for modality in pair:
                if "words" not in reps[name][modality]:
                    raise ValueError(
                        "loss.words_weight > 0 needs the word head: set --config.model.word_head=True"
                    )
                key = f"words_{_SHORT[modality]}"
                terms[key] = words_ranking(
                    reps[name][modality]["words"],
                    captions,
                    loss_cfg.margin,
                    candidates=candidates,
                    offset=offset,
                )
                word_terms.append(terms[key])
        loss = loss + loss_cfg.words_weight * sum(word_terms)

    return loss, {**terms, "loss": loss}


def _ranking_term(
    anchor: jax.Array,
    positive: jax.Array,
    loss_cfg: Any,
    gather: Gather,
    weights: jax.Array | None = None,
) -> jax.Array:
    candidates, offset = gather(positive)
    if loss_cfg.ranking_kind == "hinge":
        return ranking_loss(
            anchor, positive, loss_cfg.margin, candidates=candidates, offset=offset, weights=weights
        )
    if loss_cfg.ranking_kind == "infonce":
        return info_nce_direction(
            anchor, positive, loss_cfg.temperature, candidates=candidates, offset=offset
        )
    raise ValueError(
        f"unknown ranking_kind {loss_cfg.ranking_kind!r}; expected 'hinge' or 'infonce'"
    )
