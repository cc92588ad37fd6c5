"""Cross-modal retrieval metrics: cosine ranks, median rank, recall@k and the paper's 5 x 1000 protocol,
and how far a difference of two methods' median ranks moves with the draw of the test items.

Item i of the queries and item i of the gallery are a true pair. A tie puts the true match at the mean
position of its tied block: rank = (#items with similarity > the true one) + (#items with similarity ==
the true one, the true item included, + 1) / 2. So ranks are floats (a half-integer when an even number of
items tie), and a constant or all-zero embedding ranks (N + 1) / 2, like a random one, rather than a lucky 1
or an unfairly bad N. Vectors are L2-normalized with a floor on the norm, so zero vectors have similarity 0 to
everything and never give NaN.
"""

from collections.abc import Mapping, Sequence
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np

# Similarity blocks hold at most this many float32 entries (64 MiB), so 25,000 x 25,000 fits in memory.
_BLOCK_ENTRIES = 1 << 24
_NORM_FLOOR = 1e-12

Array = TypeVar("Array", np.ndarray, jax.Array)


def l2_normalize(x: Array, axis: int = -1) -> Array:
    """Vectors along `axis` (rows of [N, D]) scaled to unit L2 norm, for metrics: x / max(|x|, 1e-12), so
    zero vectors stay zero. numpy in, numpy out (the dtype kept); a jax array (traced, too) in, jax out.

    Training normalizes with alignment.losses.l2_normalize, x * rsqrt(|x|^2 + eps), whose gradient is
    finite at 0. The two round differently, and the tied ranks of collinear embeddings (few active
    ReLU units) move with the rounding, so every metric uses this one.
    """
    xp = jnp if isinstance(x, jax.Array) else np
    return x / xp.maximum(xp.linalg.norm(x, axis=axis, keepdims=True), _NORM_FLOOR)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a [N, D] array, got shape {x.shape}")
    return l2_normalize(x)


def ranks(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of gallery[i] among all gallery items for query i, by cosine similarity.

    Args:
      queries: [N, D] query embeddings.
      gallery: [N, D] gallery embeddings; gallery[i] is the true match of queries[i].

    Returns:
      float64 [N], values in [1, N]; a tied true match gets the mean position of its tied block.
    """
    q, g = _unit_rows(queries), _unit_rows(gallery)
    if q.shape != g.shape:
        raise ValueError(f"queries {q.shape} and gallery {g.shape} must have the same shape")
    n = q.shape[0]
    out = np.empty(n, dtype=np.float64)
    block = max(1, _BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, block):
        stop = min(start + block, n)
        sims = q[start:stop] @ g.T
        # The true similarity is read from the same product, so rounding cannot split a self-tie.
        true = sims[np.arange(stop - start), np.arange(start, stop)]
        above = np.count_nonzero(sims > true[:, None], axis=1)
        tied = np.count_nonzero(sims == true[:, None], axis=1)  # >= 1: the true item itself
        out[start:stop] = above + (tied + 1) / 2
    return out


def median_rank(queries: np.ndarray, gallery: np.ndarray) -> float:
    """Median over queries of ranks(queries, gallery); a float, since ranks may be half-integers."""
    return float(np.median(ranks(queries, gallery)))


def recall_at_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> float:
    """Fraction of queries whose true match has rank <= k (ranks are floats: a tie of two for first is 1.5)."""
    return float(np.mean(ranks(queries, gallery) <= k))


def chunked_ranks(queries: np.ndarray, gallery: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Ranks within consecutive chunks of `chunk` pairs: the gallery of a query is its own chunk.

    With N >= chunk, the N // chunk full chunks are used and the last N % chunk pairs are left out, so every
    rank is out of the same gallery size (a smaller remainder chunk would get smaller ranks). With N < chunk,
    all N pairs form one chunk.

    Args:
      queries: [N, D]; gallery: [N, D], paired by index.
      chunk: pairs per chunk (the paper: 1000).

    Returns:
      float64 [num_chunks, chunk_size] (see ranks for ties).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    queries, gallery = np.asarray(queries), np.asarray(gallery)
    n = queries.shape[0]
    size = min(chunk, n)
    count = n // size if size else 0
    if count == 0:
        raise ValueError("retrieval needs at least one pair")
    return np.stack(
        [
            ranks(queries[c * size : (c + 1) * size], gallery[c * size : (c + 1) * size])
            for c in range(count)
        ]
    )


def median_of_chunks(chunk_ranks: np.ndarray) -> float:
    """[num_chunks, chunk] ranks -> the mean over chunks of the within-chunk median (the paper's)."""
    return float(np.mean(np.median(chunk_ranks, axis=1)))


def paper_median_rank(queries: np.ndarray, gallery: np.ndarray, chunk: int = 1000) -> float:
    """The paper's protocol: the mean over chunks of the within-chunk median rank (see chunked_ranks).

    On 5,000 pairs with chunk=1000 this is the mean of 5 medians, each out of 1,000 (random: about 500).
    """
    return median_of_chunks(chunked_ranks(queries, gallery, chunk))


def direction_ranks(
    embeddings_by_modality: Mapping[str, np.ndarray],
    directions: Sequence[tuple[str, str]] | None = None,
    chunk: int = 1000,
) -> dict[str, np.ndarray]:
    """chunked_ranks for each retrieval direction.

    Args:
      embeddings_by_modality: modality name -> [N, D] embeddings; row i of every modality is the same item.
      directions: (query modality, gallery modality) pairs; None means every ordered pair of distinct modalities.
      chunk: pairs per chunk (see chunked_ranks).

    Returns:
      {"query->gallery": float64 [num_chunks, chunk_size]}.
    """
    if directions is None:
        names = list(embeddings_by_modality)
        directions = [(a, b) for a in names for b in names if a != b]
    return {
        f"{query}->{target}": chunked_ranks(
            embeddings_by_modality[query], embeddings_by_modality[target], chunk
        )
        for query, target in directions
    }


def table_of_ranks(
    ranks_by_direction: Mapping[str, np.ndarray], ks: Sequence[int] = (1, 5, 10)
) -> dict[str, dict[str, float]]:
    """{"a->b": [num_chunks, chunk] ranks} -> {"a->b": {"median_rank" (paper protocol), "recall@k"}}."""
    table = {}
    for key, chunk_ranks in ranks_by_direction.items():
        row = {"median_rank": median_of_chunks(chunk_ranks)}
        row.update({f"recall@{k}": float(np.mean(chunk_ranks <= k)) for k in ks})
        table[key] = row
    return table


def retrieval_table(
    embeddings_by_modality: Mapping[str, np.ndarray],
    directions: Sequence[tuple[str, str]] | None = None,
    chunk: int = 1000,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, dict[str, float]]:
    """Median rank (paper protocol) and recall@k for each retrieval direction, all within chunks:
    table_of_ranks(direction_ranks(embeddings_by_modality, directions, chunk), ks)."""
    return table_of_ranks(direction_ranks(embeddings_by_modality, directions, chunk), ks)


def median_rank_difference(
    ranks_a: np.ndarray,
    ranks_b: np.ndarray,
    rng: np.random.Generator,
    resamples: int = 2000,
    level: float = 0.9,
) -> tuple[float, float, float]:
    """Paper median rank of a minus that of b on the same queries, with a paired bootstrap interval.

    The two methods rank the same queries against the same galleries, so the test items are drawn again
    with replacement within each chunk, once for both, `resamples` times: the interval is how far the
    difference moves with the draw of the test set. An interval wholly below 0 means a wins beyond that
    draw, wholly above 0 that it loses; one containing 0 cannot tell them apart.

    Args:
      ranks_a, ranks_b: [num_chunks, chunk] chunked_ranks of two methods, query i of a chunk the same item.
      rng: draws the resamples.
      resamples: bootstrap draws.
      level: the interval's coverage (0.9: the 5th to the 95th percentile).

    Returns:
      (difference, low, high).
    """
    a, b = np.asarray(ranks_a, np.float64), np.asarray(ranks_b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"expected two [chunks, chunk] arrays of one shape, got {a.shape} and {b.shape}"
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie between 0 and 1, got {level}")
    chunks, size = a.shape
    difference = median_of_chunks(a) - median_of_chunks(b)
    rows = np.arange(chunks)[None, :, None]
    resampled = []
    # Blocks of draws keep memory at about 4 x 10^6 indices whatever the test set's size.
    block = max(1, (1 << 22) // max(chunks * size, 1))
    for start in range(0, resamples, block):
        draws = rng.integers(0, size, size=(min(block, resamples - start), chunks, size))
        medians = np.median(a[rows, draws], axis=2) - np.median(b[rows, draws], axis=2)
        resampled.append(np.mean(medians, axis=1))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(np.concatenate(resampled), [tail, 100.0 - tail])
    return difference, float(low), float(high)
