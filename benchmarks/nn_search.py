"""Nearest-neighbour search of a media index (experiments.media.search): exact cosine against faiss.

On random-but-clustered unit vectors of the world model's width (config.model.fc_dims[-1]), one query at
a time as the search command and the web page ask: queries/s of exact search and of the faiss index at
each size, faiss's recall@10 against exact search, and the crossover: the smallest size measured from
which on faiss answers faster with a recall@10 of at least MIN_RECALL at every size
(experiments.media.search.EXACT_MAX_ITEMS is set from it; below it exact search is exact and fast).

    python -m benchmarks.run --only=nn_search
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from alignment.retrieval import l2_normalize
from benchmarks import common
from experiments.media.search import EXACT_MAX_ITEMS, exact_top_k, faiss_index, faiss_top_k

SIZES = (300, 1_000, 3_000, 10_000, 30_000, 100_000)
CLUSTERS = 500
QUERIES = 200
K = 10
MIN_RECALL = 0.95


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Unit float32 [n, dim]: CLUSTERS random centres, each point its centre plus noise of the same
    norm scale (neighbours are mostly, not all, in their own cluster)."""
    centres = rng.standard_normal((CLUSTERS, dim)).astype(np.float32)
    points = centres[rng.integers(0, CLUSTERS, n)] + rng.standard_normal((n, dim)).astype(
        np.float32
    )
    return l2_normalize(points)


def _per_second(search, queries: np.ndarray) -> float:
    search(queries[0])  # warm
    start = time.perf_counter()
    for q in queries:
        search(q)
    return len(queries) / (time.perf_counter() - start)


def measure_size(n: int, dim: int, seed: int = 0) -> dict[str, float]:
    """Exact and faiss queries/s, faiss build seconds and recall@K at one gallery size."""
    rng = np.random.default_rng(seed)
    data = clustered(n + QUERIES, dim, rng)
    gallery, queries = data[:n], data[n:]
    start = time.perf_counter()
    index = faiss_index(gallery)
    build_s = time.perf_counter() - start
    exact = [set(exact_top_k(gallery, q, K)[1].tolist()) for q in queries]
    found = faiss_top_k(index, queries, K)[1]
    recall = float(
        np.mean([len(e & set(f.tolist())) / K for e, f in zip(exact, found, strict=True)])
    )
    return {
        "exact_queries_per_s": _per_second(lambda q: exact_top_k(gallery, q, K), queries),
        "faiss_queries_per_s": _per_second(lambda q: faiss_top_k(index, q[None], K), queries),
        "faiss_build_s": build_s,
        "recall_at_10": recall,
    }


def _faiss_faster(row: dict[str, float]) -> bool:
    return row["faiss_queries_per_s"] > row["exact_queries_per_s"]


def measure(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    dim = int(common.load_config("world").model.fc_dims[-1])
    by_size = {str(n): measure_size(n, dim) for n in sizes}
    faster = [n for n in sizes if _faiss_faster(by_size[str(n)])]
    good = [n for n in faster if by_size[str(n)]["recall_at_10"] >= MIN_RECALL]
    # The crossover holds for every larger size too (a tiny table has so few lists that faiss
    # probes them all, and is exact).
    settled = [n for n in good if all(m in good for m in sizes if m >= n)]
    return {
        "dim": dim,
        "clusters": CLUSTERS,
        "queries": QUERIES,
        "by_size": by_size,
        "faiss_faster_from_items": min(faster) if faster else None,
        "crossover_items": min(settled) if settled else None,
        "exact_max_items": EXACT_MAX_ITEMS,
    }


def table_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The run table's rows: per size, queries/s exact / faiss and faiss's recall@10; the crossover."""
    rows = [
        (
            f"nn search {int(n):,} items: queries/s exact / faiss, recall@{K}",
            f"{row['exact_queries_per_s']:,.0f} / {row['faiss_queries_per_s']:,.0f}, "
            f"{row['recall_at_10']:.3f}",
        )
        for n, row in result["by_size"].items()
    ]
    rows.append(
        (
            "nn search crossover (faiss from) / exact_max_items",
            f"{result['crossover_items']} / {result['exact_max_items']}",
        )
    )
    return rows
