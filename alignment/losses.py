"""The paper's losses: model transfer (KL to the teacher) and cross-modal ranking, plus InfoNCE,
uniformity and the ranking of predicted caption words.

Every loss is written for one device's share of the batch: the anchors are local, and `candidates`
(with `offset`, the position of the local positives inside them) may be the whole global batch, so the
mean of the per-device losses equals the loss on the global batch.

The training objective is a weighted sum of named terms (TERMS): config.loss names them (its objective
and weights) and check_config refuses, when the config loads, combinations that cannot work.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from alignment.streams import STREAMS

# Squared-norm floor: zero vectors normalize to zero (cosine 0) with a finite gradient.
_NORM_EPS = 1e-12

_SHORT = {"image": "img", "sound": "snd", "text": "txt"}

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


@dataclasses.dataclass(frozen=True)
class TermInputs:
    """What every loss term reads: one device's share of a step.

    reps: {stream: {modality: the network's representations, each [n, dim]}} for the streams present.
    teacher_probs: {stream: [n, C]} the teacher's distribution of each stream's images.
    captions: {stream: [n, word_dim]} the mean word vectors of a stream's captions (models.text.mean_words).
    gather: x -> (candidates, offset): the whole batch of x, holding the local rows at offset.
    cfg: config.loss.
    """

    reps: Mapping[str, Mapping[str, Mapping[str, jax.Array]]]
    teacher_probs: Mapping[str, jax.Array]
    captions: Mapping[str, jax.Array]
    gather: Gather
    cfg: Any

    @property
    def streams(self) -> list[tuple[str, tuple[str, str]]]:
        """(stream, (modality, modality)) of the streams present, in STREAMS order."""
        return [(name, pair) for name, pair in STREAMS.items() if name in self.reps]


Term = Callable[[TermInputs], dict[str, jax.Array]]


def kl_per_modality(x: TermInputs) -> dict[str, jax.Array]:
    """KL per modality ("kl_image", "kl_sound", "kl_text"): each student's kl_transfer to the teacher's
    distribution of the paired image; kl_image averages the image student's over the streams."""
    image_kls, others = [], {}
    for name, (image, other) in x.streams:
        probs = x.teacher_probs[name]
        image_kls.append(kl_transfer(probs, x.reps[name][image]["logits"]))
        others[f"kl_{other}"] = kl_transfer(probs, x.reps[name][other]["logits"])
    return {"kl_image": jnp.mean(jnp.stack(image_kls)), **others}


def ranking_per_direction(x: TermInputs) -> dict[str, jax.Array]:
    """Ranking per direction ("rank_img_snd", "rank_snd_img", "rank_img_txt", "rank_txt_img"), each
    summed over loss.layers against the whole batch's negatives: loss.ranking_kind "hinge" (the paper's,
    at loss.margin) or "infonce" (at loss.temperature)."""
    terms = {}
    for name, pair in x.streams:
        weights = _same_class_weights(x, name)
        for anchor, positive in (pair, pair[::-1]):
            per_layer = [
                _ranking_direction(
                    x.reps[name][anchor][layer], x.reps[name][positive][layer], x, weights
                )
                for layer in x.cfg.layers
            ]
            terms[f"rank_{_SHORT[anchor]}_{_SHORT[positive]}"] = jnp.sum(jnp.stack(per_layer))
    return terms


def _same_class_weights(x: TermInputs, stream: str) -> jax.Array | None:
    """The hinge's weights of the stream's negatives: loss.same_class_weight where a negative's image has
    the anchor's class (the teacher's most probable one), on the streams of loss.same_class_streams.

    Above 1, pairs must be told apart from their own class's items, not only from the other classes
    (which the KL terms already separate). A stream whose pairs share nothing within a class (a dog's
    bark and a photo of another dog) has nothing there to tell apart, hence the choice of streams.
    """
    if x.cfg.same_class_weight == 1.0 or stream not in x.cfg.same_class_streams:
        return None
    classes = jnp.argmax(x.teacher_probs[stream], axis=-1)
    return same_class_weights(classes, x.gather(classes)[0], x.cfg.same_class_weight)


def _ranking_direction(
    anchor: jax.Array, positive: jax.Array, x: TermInputs, weights: jax.Array | None
) -> jax.Array:
    candidates, offset = x.gather(positive)
    if x.cfg.ranking_kind == "infonce":
        return info_nce_direction(
            anchor, positive, x.cfg.temperature, candidates=candidates, offset=offset
        )
    return ranking_loss(
        anchor, positive, x.cfg.margin, candidates=candidates, offset=offset, weights=weights
    )


def uniformity_per_modality(x: TermInputs) -> dict[str, jax.Array]:
    """Uniformity per modality ("unif_image", "unif_sound", "unif_text") of its rows at loss.layers,
    the image's averaged over the streams.

    It keeps items of one class from collapsing onto one point, where the ranking loss's push between a
    pair and a same-class negative cancels, so what captions say beyond the class can be aligned.
    """
    per_modality: dict[str, list[jax.Array]] = {}
    for name, pair in x.streams:
        for modality in pair:
            for layer in x.cfg.layers:
                rows = x.reps[name][modality][layer]
                candidates, offset = x.gather(rows)
                value = uniformity(rows, candidates=candidates, offset=offset)
                per_modality.setdefault(modality, []).append(value)
    return {f"unif_{m}": jnp.mean(jnp.stack(values)) for m, values in per_modality.items()}


def words_per_modality(x: TermInputs) -> dict[str, jax.Array]:
    """Caption words per modality ("words_img", "words_txt"): words_ranking of the word head's output
    ("words") of the image and of the text of each stream with captions.

    Both must predict their caption's own words, not only its class, from fc7. The captions are fixed,
    so unlike the ranking between the towers this pull does not vanish when both towers have collapsed
    the items of a class onto one point.
    """
    terms = {}
    for name, pair in x.streams:
        if name not in x.captions:
            continue
        captions = x.captions[name]
        candidates, offset = x.gather(captions)  # once for both modalities of the stream
        for modality in pair:
            terms[f"words_{_SHORT[modality]}"] = words_ranking(
                x.reps[name][modality]["words"],
                captions,
                x.cfg.margin,
                candidates=candidates,
                offset=offset,
            )
    return terms


# The loss terms by name: each returns its parts {metric name: scalar}, and the objective adds
# config.loss.<name>_weight times their sum. A new term is a function above, a line here and its weight
# in the config.
TERMS: dict[str, Term] = {
    "kl": kl_per_modality,
    "ranking": ranking_per_direction,
    "uniformity": uniformity_per_modality,
    "words": words_per_modality,
}
# The paper's terms each loss.objective turns on; every other term is on when its weight is above 0.
OBJECTIVES = {"transfer": ("kl",), "ranking": ("ranking",), "both": ("kl", "ranking")}
_CHOSEN_BY_OBJECTIVE = frozenset(term for terms in OBJECTIVES.values() for term in terms)
RANKING_KINDS = ("hinge", "infonce")


def term_weight(loss_cfg: Any, term: str) -> float:
    """The weight config.loss gives a term: loss.<term>_weight."""
    return loss_cfg[f"{term}_weight"]


def terms_in_use(loss_cfg: Any) -> tuple[str, ...]:
    """The names of the terms config.loss turns on, in TERMS order."""
    chosen = OBJECTIVES[loss_cfg.objective]
    return tuple(
        term
        for term in TERMS
        if term in chosen or (term not in _CHOSEN_BY_OBJECTIVE and term_weight(loss_cfg, term) > 0)
    )


def needs_teacher_probs(loss_cfg: Any) -> bool:
    """Whether the objective reads the teacher's distributions (its KL terms)."""
    return "kl" in terms_in_use(loss_cfg)


def objective(
    reps: Mapping[str, Mapping[str, Mapping[str, jax.Array]]],
    teacher_probs: Mapping[str, jax.Array] | None,
    loss_cfg: Any,
    gather: Gather | None = None,
    caption_words: Mapping[str, jax.Array] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training loss of config.loss: the sum over terms_in_use of each term's weight times the sum of
    its parts.

    reps: {"image_sound": {"image": r, "sound": r}, "image_text": {"image": r, "text": r}}, each r the
      network's dict of representations [N, dim]; either stream may be absent.
    teacher_probs: {stream: [N, C]} the teacher's distributions of each stream's images (KL terms and
      same-class weights). caption_words: {stream: [N, word_dim]} (the words term).
    gather: x -> (candidates, offset) giving the whole batch of negatives; default: the local batch.
    Returns (loss, metrics: every part of every term in use, and "loss"). The config is assumed to have
    passed check_config.
    """
    inputs = TermInputs(reps, teacher_probs or {}, caption_words or {}, gather or _local, loss_cfg)
    loss = jnp.zeros((), jnp.float32)
    metrics: dict[str, jax.Array] = {}
    for term in terms_in_use(loss_cfg):
        parts = TERMS[term](inputs)
        loss = loss + term_weight(loss_cfg, term) * sum(parts.values())
        metrics.update(parts)
    return loss, {**metrics, "loss": loss}


def check_config(loss_cfg: Any, model_cfg: Any) -> None:
    """Refuses, with a one-line ValueError, a config.loss whose terms cannot work, alone or with
    config.model: an unknown objective, ranking kind or stream, a term without a weight or with a
    negative one, same-class weights without the teacher's classes or the hinge, caption words without
    the model's word head."""
    if loss_cfg.objective not in OBJECTIVES:
        raise ValueError(
            f"unknown loss.objective {loss_cfg.objective!r}; expected one of {tuple(OBJECTIVES)}"
        )
    if loss_cfg.ranking_kind not in RANKING_KINDS:
        raise ValueError(
            f"unknown loss.ranking_kind {loss_cfg.ranking_kind!r}; expected one of {RANKING_KINDS}"
        )
    unweighted = [f"loss.{term}_weight" for term in TERMS if f"{term}_weight" not in loss_cfg]
    if unweighted:
        raise ValueError(
            f"the loss terms {sorted(TERMS)} need weights in the config: add {unweighted}"
        )
    negative = [f"loss.{term}_weight" for term in TERMS if term_weight(loss_cfg, term) < 0]
    if negative:
        raise ValueError(f"{negative} must not be negative")
    unknown = sorted(set(loss_cfg.same_class_streams) - set(STREAMS))
    if unknown:
        raise ValueError(
            f"loss.same_class_streams names unknown streams {unknown}; expected some of {tuple(STREAMS)}"
        )
    in_use = terms_in_use(loss_cfg)
    if loss_cfg.same_class_weight != 1.0 and (
        "kl" not in in_use or "ranking" not in in_use or loss_cfg.ranking_kind != "hinge"
    ):
        raise ValueError(
            "loss.same_class_weight needs the teacher's classes and the hinge: set "
            "--config.loss.objective=both and --config.loss.ranking_kind=hinge, or the weight to 1"
        )
    if "words" in in_use and not model_cfg.word_head:
        raise ValueError(
            "loss.words_weight > 0 needs the word head: set --config.model.word_head=True"
        )
