"""The paper's losses: model transfer (KL to the teacher) and cross-modal ranking, plus InfoNCE,
uniformity and the ranking of predicted caption words.

Every loss is written for one device's share of the batch: the anchors are local, and `candidates`
(with `offset`, the position of the local positives inside them) may be the whole global batch, so the
mean of the per-device losses equals the loss on the global batch.

The training objective is a weighted sum of named terms (TERMS): config.loss names them (its objective
and weights) and check_config refuses, when the config loads, combinations that cannot work.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from alignment.chunked_loss import LOGSUMEXP, SUM, Ring, ring_reduce
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
    positives = _is_positive(a.shape[0], c.shape[0], offset)
    return _hinge_sum(margin, a, matched, c, positives, weights) / a.shape[0]


def _hinge_sum(
    margin: float,
    a: jax.Array,
    matched: jax.Array,
    c: jax.Array,
    positive: jax.Array | None,
    weights: jax.Array | None,
) -> jax.Array:
    """sum_ij w_ij max(0, margin - matched_i + cos_ij) over the candidates that are not i's pair.

    a: [n, D] and c: [m, D] unit rows; matched: [n] cos(a_i, p_i); positive: [n, m] i's pair (None:
    none in c); weights: [n, m] or None (all 1)."""
    hinge = jax.nn.relu(margin - matched[:, None] + _cosines(a, c))
    if positive is not None:
        hinge = jnp.where(positive, 0.0, hinge)
    if weights is not None:
        hinge = hinge * weights
    return jnp.sum(hinge)


def same_class_weights(
    classes: jax.Array, candidate_classes: jax.Array, weight: float
) -> jax.Array:
    """[N] and [M] class indices -> [N, M] float32: `weight` where the classes match, else 1."""
    same = classes[:, None] == candidate_classes[None, :]
    return jnp.where(same, jnp.float32(weight), jnp.float32(1.0))


def softmax_ranking(
    anchor: jax.Array, positive: jax.Array, scale: Any, *, candidates: jax.Array | None = None
) -> jax.Array:
    """mean_i [logsumexp_j(scale cos(a_i, c_j)) - scale cos(a_i, p_i)], InfoNCE at temperature 1/scale.

    anchor, positive: [N, D] unnormalized pairs; candidates: [M, D] holding the positives (default: the
    positives); scale: a float or a float32 scalar (learned). Float32 scalar."""
    a, p = l2_normalize(anchor), l2_normalize(positive)
    c = p if candidates is None else l2_normalize(candidates)
    return jnp.mean(_logsumexp_rows(scale, a, c) - scale * jnp.sum(a * p, axis=-1))


def _logsumexp_rows(scale: Any, a: jax.Array, c: jax.Array) -> jax.Array:
    """[n] logsumexp_j(scale cos(a_i, c_j)) of unit rows a [n, D] and c [m, D]."""
    return jax.nn.logsumexp(scale * _cosines(a, c), axis=-1)


def sigmoid_ranking(
    anchor: jax.Array,
    positive: jax.Array,
    scale: Any,
    bias: Any,
    *,
    candidates: jax.Array | None = None,
    offset: Any = 0,
) -> jax.Array:
    """SigLIP's loss: -(1/N) sum_i sum_j log sigmoid(z_ij (scale cos(a_i, c_j) + bias)), z_ij = +1 on
    i's pair, -1 elsewhere.

    Shapes as in ranking_loss; scale and bias: floats or float32 scalars (learned). Float32 scalar."""
    a = l2_normalize(anchor)
    c = l2_normalize(positive if candidates is None else candidates)
    positives = _is_positive(a.shape[0], c.shape[0], offset)
    return _sigmoid_sum(scale, bias, a, c, positives) / a.shape[0]


def _sigmoid_sum(
    scale: Any, bias: Any, a: jax.Array, c: jax.Array, positive: jax.Array | None
) -> jax.Array:
    """-sum_ij log sigmoid(z_ij (scale cos_ij + bias)) of unit rows a [n, D] and c [m, D]; positive:
    [n, m] where z = +1 (None: -1 everywhere)."""
    logits = scale * _cosines(a, c) + bias
    signs = -1.0 if positive is None else jnp.where(positive, 1.0, -1.0)
    return -jnp.sum(jax.nn.log_sigmoid(signs * logits))


def info_nce(a: jax.Array, b: jax.Array, temperature: float) -> jax.Array:
    """Symmetric InfoNCE between paired rows of a and b ([N, D] each): mean of a->b and b->a."""
    scale = 1.0 / temperature
    return 0.5 * (softmax_ranking(a, b, scale) + softmax_ranking(b, a, scale))


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
    loss_params: {stream: {name: float32 scalar}} the learned scalars of the ranking (init_loss_params).
    ring: where loss.chunked passes the ranking's candidates around the mesh; None: gathered.
    """

    reps: Mapping[str, Mapping[str, Mapping[str, jax.Array]]]
    teacher_probs: Mapping[str, jax.Array]
    captions: Mapping[str, jax.Array]
    gather: Gather
    cfg: Any
    loss_params: Mapping[str, Mapping[str, jax.Array]] = dataclasses.field(default_factory=dict)
    ring: Ring | None = None

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
    summed over loss.layers against the whole batch's negatives, of loss.ranking_kind: "hinge" (the
    paper's, at loss.margin), "infonce" (at loss.temperature), "infonce_learned" (CLIP's learned
    temperature) or "sigmoid" (SigLIP's learned temperature and bias); the learned scalars are the
    stream's, shared by its directions and layers. loss.chunked: the negatives come around the mesh a
    device's chunk at a time (chunked_loss.ring_reduce) instead of gathered, with the same result."""
    terms = {}
    for name, pair in x.streams:
        scalars = _ranking_scalars(x, name)
        classes = _same_classes(x, name)
        weights = None
        if classes is not None and x.ring is None:
            weights = same_class_weights(classes, x.gather(classes)[0], x.cfg.same_class_weight)
        for anchor, positive in (pair, pair[::-1]):
            per_layer = []
            for layer in x.cfg.layers:
                a, p = x.reps[name][anchor][layer], x.reps[name][positive][layer]
                if x.ring is None:
                    per_layer.append(_gathered_direction(a, p, x, scalars, weights))
                else:
                    per_layer.append(_chunked_direction(a, p, x, scalars, classes, x.ring))
            terms[f"rank_{_SHORT[anchor]}_{_SHORT[positive]}"] = jnp.sum(jnp.stack(per_layer))
    return terms


def _same_classes(x: TermInputs, stream: str) -> jax.Array | None:
    """[n] the classes that weigh the hinge's negatives (the teacher's most probable one of each
    image), or None where loss.same_class_weight does not apply to the stream.

    Above 1, pairs must be told apart from their own class's items, not only from the other classes
    (which the KL terms already separate). A stream whose pairs share nothing within a class (a dog's
    bark and a photo of another dog) has nothing there to tell apart, hence the choice of streams.
    """
    if x.cfg.same_class_weight == 1.0 or stream not in x.cfg.same_class_streams:
        return None
    return jnp.argmax(x.teacher_probs[stream], axis=-1)


def _ranking_scalars(x: TermInputs, stream: str) -> dict[str, Any]:
    """The numbers of the stream's ranking kind: "scale" (inverse temperature) and "bias", learned
    (float32 scalars from x.loss_params) or fixed (floats from the config); none for the hinge."""
    kind = x.cfg.ranking_kind
    if kind == "infonce":
        return {"scale": 1.0 / x.cfg.temperature}
    if kind not in LEARNED_SCALARS:
        return {}
    if stream not in x.loss_params:
        raise ValueError(
            f"loss.ranking_kind={kind!r} learns scalars but the parameters hold no "
            f"{LOSS_PARAMS}[{stream!r}]: build them with with_loss_params(params, config.loss)"
        )
    learned = x.loss_params[stream]
    scale = jnp.exp(learned["log_scale"])
    if kind == "sigmoid":
        return {"scale": scale, "bias": learned["bias"]}
    return {"scale": jnp.minimum(scale, MAX_SCALE)}


def _gathered_direction(
    anchor: jax.Array,
    positive: jax.Array,
    x: TermInputs,
    scalars: dict[str, Any],
    weights: jax.Array | None,
) -> jax.Array:
    """One direction against the gathered batch of candidates."""
    candidates, offset = x.gather(positive)
    if x.cfg.ranking_kind == "sigmoid":
        return sigmoid_ranking(
            anchor,
            positive,
            scalars["scale"],
            scalars["bias"],
            candidates=candidates,
            offset=offset,
        )
    if "scale" in scalars:
        return softmax_ranking(anchor, positive, scalars["scale"], candidates=candidates)
    return ranking_loss(
        anchor, positive, x.cfg.margin, candidates=candidates, offset=offset, weights=weights
    )


def _chunked_direction(
    anchor: jax.Array,
    positive: jax.Array,
    x: TermInputs,
    scalars: dict[str, Any],
    classes: jax.Array | None,
    ring: Ring,
) -> jax.Array:
    """_gathered_direction's value, the candidates coming around the ring a device's chunk at a time:
    each kind's sum over candidates is a sum (or, for the softmax, a logsumexp) of per-chunk parts."""
    a, p = l2_normalize(anchor), l2_normalize(positive)
    matched = jnp.sum(a * p, axis=-1)
    # Only arrays are differentiated around the ring; fixed numbers stay in the blocks.
    learned = {k: v for k, v in scalars.items() if isinstance(v, jax.Array)}
    fixed = {k: v for k, v in scalars.items() if k not in learned}
    kind, cfg = x.cfg.ranking_kind, x.cfg

    def hinge(s, anchors, c, aux, positive):
        weights = None if aux[0] is None else same_class_weights(*aux, cfg.same_class_weight)
        return _hinge_sum(cfg.margin, *anchors, c, positive, weights)

    def softmax(s, anchors, c, aux, positive):
        return _logsumexp_rows({**fixed, **s}["scale"], anchors[0], c)

    def sigmoid(s, anchors, c, aux, positive):
        s = {**fixed, **s}
        return _sigmoid_sum(s["scale"], s["bias"], anchors[0], c, positive)

    anchors, n = (a, matched), a.shape[0]
    if kind == "sigmoid":
        return ring_reduce(sigmoid, SUM, ring, learned, anchors, p) / n
    if "scale" in scalars:
        lse = ring_reduce(softmax, LOGSUMEXP, ring, learned, anchors, p)
        return jnp.mean(lse - scalars["scale"] * matched)
    return ring_reduce(hinge, SUM, ring, learned, anchors, p, (classes, classes)) / n


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
RANKING_KINDS = ("hinge", "infonce", "infonce_learned", "sigmoid")
# Where the learned scalars live in the parameters: params[LOSS_PARAMS][stream][name].
LOSS_PARAMS = "loss_params"
# The ranking kinds that learn scalars, and their initial values: CLIP's log inverse temperature
# log(1 / 0.07) (Radford et al., 2021); SigLIP's log(10) and bias -10 (Zhai et al., 2023), the bias
# starting the N - 1 negatives of each row near their target so the first steps are not spent there.
LEARNED_SCALARS = {
    "infonce_learned": {"log_scale": math.log(1 / 0.07)},
    "sigmoid": {"log_scale": math.log(10.0), "bias": -10.0},
}
MAX_SCALE = 100.0  # CLIP's clamp of the learned inverse temperature


def init_loss_params(loss_cfg: Any) -> dict[str, dict[str, jax.Array]]:
    """{stream: {name: float32 scalar}} the initial learned scalars of config.loss's ranking for every
    stream; {} when the ranking is not in use or its kind learns none."""
    initial = LEARNED_SCALARS.get(loss_cfg.ranking_kind)
    if initial is None or "ranking" not in terms_in_use(loss_cfg):
        return {}
    return {
        stream: {name: jnp.asarray(value, jnp.float32) for name, value in initial.items()}
        for stream in STREAMS
    }


def with_loss_params(params: Any, loss_cfg: Any) -> Any:
    """The network's parameters plus the loss's learned scalars under LOSS_PARAMS, where config.loss
    has any (init_loss_params), so that the optimizer trains and checkpoints them with the rest;
    `params` unchanged otherwise (and for loss_cfg None)."""
    learned = {} if loss_cfg is None else init_loss_params(loss_cfg)
    return {**params, LOSS_PARAMS: learned} if learned else params


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


def is_chunked(loss_cfg: Any) -> bool:
    """Whether config.loss asks for the chunked ranking (loss.chunked; absent: gathered)."""
    return bool(loss_cfg.get("chunked", False))


def needs_teacher_probs(loss_cfg: Any) -> bool:
    """Whether the objective reads the teacher's distributions (its KL terms)."""
    return "kl" in terms_in_use(loss_cfg)


def objective(
    reps: Mapping[str, Mapping[str, Mapping[str, jax.Array]]],
    teacher_probs: Mapping[str, jax.Array] | None,
    loss_cfg: Any,
    gather: Gather | None = None,
    caption_words: Mapping[str, jax.Array] | None = None,
    loss_params: Mapping[str, Mapping[str, jax.Array]] | None = None,
    ring: Ring | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The training loss of config.loss: the sum over terms_in_use of each term's weight times the sum of
    its parts.

    reps: {"image_sound": {"image": r, "sound": r}, "image_text": {"image": r, "text": r}}, each r the
      network's dict of representations [N, dim]; either stream may be absent.
    teacher_probs: {stream: [N, C]} the teacher's distributions of each stream's images (KL terms and
      same-class weights). caption_words: {stream: [N, word_dim]} (the words term).
    gather: x -> (candidates, offset) giving the whole batch of negatives; default: the local batch.
    loss_params: params[LOSS_PARAMS], the ranking's learned scalars (with_loss_params).
    ring: where loss.chunked passes the ranking's candidates around the mesh (inside shard_map).
    Returns (loss, metrics: every part of every term in use, and "loss"). The config is assumed to have
    passed check_config.
    """
    inputs = TermInputs(
        reps,
        teacher_probs or {},
        caption_words or {},
        gather or _local,
        loss_cfg,
        loss_params or {},
        ring,
    )
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
