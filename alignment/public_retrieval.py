"""Retrieval on the public sets: large galleries, several true items per query, ranks on device.

Unlike alignment.retrieval (query i matches gallery i, N x N), a public set pairs 25,000 captions with
5,000 images: text->image has one true image per caption, image->text five true captions per image.
Similarities are computed on the default device, `chunk` queries at a time inside one jitted loop, so
no [Q, G] matrix is ever built, on the host or the device; only [Q, K] ranks come back.

Ranks follow alignment.retrieval's tie rule: a true item at similarity s ranks (#gallery items above s)
+ (#items at exactly s, itself included, + 1) / 2, the mean position of its tied block. The rank of a
query (for recall@k and the median rank) is its best true item's, as is customary for R@k on
COCO/Flickr30k. Similarities use full float32 matrix products (Precision.HIGHEST): the bf16 passes that
accelerators use by default would create and break ties at random.

mAP@k (k = 10 for Clotho): AP@k = (1 / min(R, k)) * sum over the m-th best-ranked true item (m = 1..R)
with rank r_m <= k of m / r_m, R the query's number of true items. With one true item this is 1 / rank
if rank <= k else 0 (Clotho's text->audio metric); with five (audio->text) it is the standard AP@10.
Tied true items take their tie-rule ranks, so AP stays in [0, 1].
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from alignment.retrieval import l2_normalize

# Similarity entries per chunk when the caller gives no chunk: 16 MiB of float32. The comparisons with
# each true item may be materialized beside the similarities (on CPU they are), so chunks stay small.
_CHUNK_ENTRIES = 1 << 22


@functools.partial(jax.jit, static_argnames=("chunk",))
def _doubled_ranks(
    queries: jax.Array, gallery: jax.Array, relevant: jax.Array, chunk: int
) -> jax.Array:
    """int32 [Q, K]: 2 * rank of each relevant item (exact integers), -1 where relevant is -1."""
    g = l2_normalize(gallery)
    q = l2_normalize(queries).reshape(-1, chunk, queries.shape[1])
    rel = relevant.reshape(-1, chunk, relevant.shape[1])

    def one_chunk(block: tuple[jax.Array, jax.Array]) -> jax.Array:
        q_block, rel_block = block
        sims = jnp.dot(q_block, g.T, precision=jax.lax.Precision.HIGHEST)  # [chunk, G]
        # True similarities read from the same product, so rounding cannot split a self-tie.
        true = jnp.take_along_axis(sims, jnp.maximum(rel_block, 0), axis=1)  # [chunk, K]
        columns = []
        for k in range(rel_block.shape[1]):  # K is small and static: no [chunk, K, G] tensor
            above = jnp.sum(sims > true[:, k : k + 1], axis=1, dtype=jnp.int32)
            tied = jnp.sum(sims == true[:, k : k + 1], axis=1, dtype=jnp.int32)
            columns.append(2 * above + tied + 1)
        return jnp.where(rel_block >= 0, jnp.stack(columns, axis=1), -1)

    return jax.lax.map(one_chunk, (q, rel)).reshape(-1, relevant.shape[1])


def match_ranks(
    queries: np.ndarray,
    gallery: np.ndarray,
    relevant: np.ndarray,
    chunk: int | None = None,
) -> np.ndarray:
    """Rank (1 = best, by cosine similarity) of each true gallery item of each query.

    Args:
      queries: [Q, D] query embeddings.
      gallery: [G, D] gallery embeddings.
      relevant: int [Q] (one true gallery index per query) or [Q, K] (up to K, padded with -1; each
        query needs at least one).
      chunk: queries per device step; None picks about 2**22 similarities per step.

    Returns:
      float64 [Q, K] (K = 1 for [Q] input), tie-rule ranks in [1, G]; inf where relevant is -1.
    """
    q = np.asarray(queries, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    rel = np.asarray(relevant, dtype=np.int32)
    rel = rel[:, None] if rel.ndim == 1 else rel
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1] or 0 in (q.shape[0], g.shape[0]):
        raise ValueError(f"queries [Q, D] and gallery [G, D] needed, got {q.shape}, {g.shape}")
    if rel.ndim != 2 or rel.shape[0] != q.shape[0] or rel.shape[1] == 0:
        raise ValueError(f"relevant must be [Q] or [Q, K] with Q = {q.shape[0]}, got {rel.shape}")
    if rel.max(initial=-1) >= g.shape[0] or rel.min(initial=0) < -1 or (rel.max(axis=1) < 0).any():
        raise ValueError(
            f"relevant indices must lie in [0, {g.shape[0]}) (-1 pads), >= 1 per query"
        )
    if chunk is None:
        chunk = max(1, _CHUNK_ENTRIES // g.shape[0])
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    chunk = min(chunk, q.shape[0])
    padded = -(-q.shape[0] // chunk) * chunk
    # Padding rows are zero queries with no relevant item: their -1 ranks are cut off below.
    q_pad = np.zeros((padded, q.shape[1]), np.float32)
    q_pad[: q.shape[0]] = q
    rel_pad = np.full((padded, rel.shape[1]), -1, np.int32)
    rel_pad[: rel.shape[0]] = rel
    doubled = np.asarray(_doubled_ranks(q_pad, g, rel_pad, chunk))[: q.shape[0]]
    return np.where(doubled < 0, np.inf, doubled / 2.0)


def best_ranks(ranks: np.ndarray) -> np.ndarray:
    """float64 [Q]: each query's best (smallest) true-item rank, from match_ranks' [Q, K]."""
    return np.min(np.asarray(ranks, dtype=np.float64), axis=1)


def average_precision_at_k(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """float64 [Q]: AP@k of each query from match_ranks' [Q, K] (module docstring)."""
    ordered = np.sort(np.asarray(ranks, dtype=np.float64), axis=1)  # inf pads sort last
    count = np.sum(np.isfinite(ordered), axis=1)
    position = np.arange(1, ordered.shape[1] + 1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(ordered <= k, position / ordered, 0.0)
    return precision.sum(axis=1) / np.minimum(count, k)


def retrieval_metrics(
    ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10), map_k: int = 10
) -> dict[str, float]:
    """{"median_rank", "mean_rank", "recall@k" for each k, f"map@{map_k}"} from match_ranks' [Q, K]."""
    best = best_ranks(ranks)
    metrics = {"median_rank": float(np.median(best)), "mean_rank": float(np.mean(best))}
    metrics.update({f"recall@{k}": float(np.mean(best <= k)) for k in ks})
    metrics[f"map@{map_k}"] = float(np.mean(average_precision_at_k(ranks, map_k)))
    return metrics


def captions_of_items(caption_item: np.ndarray, num_items: int) -> np.ndarray:
    """int [num_items, K]: the caption indices of each item, padded with -1 (K = most captions)."""
    owners = np.asarray(caption_item, dtype=np.int64)
    if owners.ndim != 1 or owners.min(initial=0) < 0 or owners.max(initial=-1) >= num_items:
        raise ValueError(f"caption_item must be [C] indices in [0, {num_items})")
    counts = np.bincount(owners, minlength=num_items)
    if (counts == 0).any():
        raise ValueError(f"item {int(np.argmin(counts))} has no caption")
    out = np.full((num_items, int(counts.max())), -1, dtype=np.int64)
    order = np.argsort(owners, kind="stable")
    slot = np.arange(owners.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out[owners[order], slot] = order
    return out


def caption_retrieval(
    item_embeddings: np.ndarray,
    caption_embeddings: np.ndarray,
    caption_item: np.ndarray,
    modality: str = "image",
    chunk: int | None = None,
    ks: Sequence[int] = (1, 5, 10),
    map_k: int = 10,
) -> dict[str, dict[str, float]]:
    """Both directions of a caption set (COCO, Flickr30k, Clotho, AudioCaps).

    Args:
      item_embeddings: [N, D] images or sounds.
      caption_embeddings: [C, D]; caption j describes item caption_item[j].
      caption_item: int [C] in [0, N), every item with at least one caption.
      modality: names the item side of the directions ("image" or "sound").
      chunk, ks, map_k: as in match_ranks and retrieval_metrics.

    Returns:
      {"text->{modality}": metrics over the C captions, "{modality}->text": metrics over the N items}.
    """
    owners = np.asarray(caption_item, dtype=np.int64)
    to_items = match_ranks(caption_embeddings, item_embeddings, owners, chunk)
    to_captions = match_ranks(
        item_embeddings, caption_embeddings, captions_of_items(owners, len(item_embeddings)), chunk
    )
    return {
        f"text->{modality}": retrieval_metrics(to_items, ks, map_k),
        f"{modality}->text": retrieval_metrics(to_captions, ks, map_k),
    }
