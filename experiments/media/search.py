"""Search an index folder (store.py) by a query embedding: exact cosine up to EXACT_MAX_ITEMS items of
the target modality, faiss above (an inverted file of sqrt(N) lists, trained on at most
FAISS_TRAIN_PER_LIST points per list, FAISS_PROBES lists probed per query).

    index = Index("my_index")
    embedder = index.embedder()                      # the run that made the index
    query = embedder.embed_sentences(["a dog barks"])[0]
    for match in index.search(query, target="sound", top_k=5):
        print(match.cosine, match.path, match.caption)

benchmarks/nn_search.py measures the crossover and the faiss recall (docs/own_media.md).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from alignment.retrieval import l2_normalize
from alignment.streams import MODALITIES
from experiments.media import store
from experiments.media.embedder import Embedder

# benchmarks/nn_search.py's crossover: from here on faiss answers faster with a recall@10 of 0.95 or more.
EXACT_MAX_ITEMS = 10_000
# k-means on a sample of this many points per list: the index is built in seconds, not minutes.
FAISS_TRAIN_PER_LIST = 64
FAISS_PROBES = 16


@dataclasses.dataclass(frozen=True)
class Match:
    """One indexed item: its rank (1 = best), cosine to the query, modality, path (relative to the
    index's source folder; "file.txt:LINE" for a sentence) and caption."""

    rank: int
    cosine: float
    modality: str
    path: str
    caption: str


@dataclasses.dataclass
class Table:
    """The indexed items of one modality: unit-norm float32 embeddings [N, D], paths and captions [N]."""

    embeddings: np.ndarray
    paths: np.ndarray
    captions: np.ndarray
    faiss_index: Any = None


def exact_top_k(
    embeddings: np.ndarray, query: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm embeddings [N, D] and query [D] -> (cosines [k], rows [k]) best first, k = min(top_k, N)."""
    cosines = embeddings @ query
    k = min(top_k, len(cosines))
    rows = np.argpartition(-cosines, k - 1)[:k] if k < len(cosines) else np.arange(len(cosines))
    rows = rows[np.argsort(-cosines[rows], kind="stable")]
    return cosines[rows], rows


def faiss_index(embeddings: np.ndarray) -> Any:
    """An inner-product inverted-file faiss index over unit-norm float32 embeddings [N, D]."""
    import faiss  # imported on first use: only large tables need it

    n, dim = embeddings.shape
    lists = max(1, min(n // 39, int(np.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.max_points_per_centroid = FAISS_TRAIN_PER_LIST
    index.train(embeddings)
    index.add(embeddings)
    index.nprobe = min(FAISS_PROBES, lists)
    return index


def faiss_top_k(index: Any, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm queries [Q, D] -> (cosines [Q, k], rows [Q, k]) best first (rows -1 past the end)."""
    return index.search(np.ascontiguousarray(queries, np.float32), top_k)


class Index:
    """An index folder opened for search; each modality's table is loaded on first use.

    exact_max_items: tables up to this size are searched exactly, larger ones with faiss.
    """

    def __init__(self, index_dir: str, exact_max_items: int = EXACT_MAX_ITEMS):
        meta = store.read_meta(index_dir)
        if meta is None or not meta.get("complete"):
            raise ValueError(
                f"{index_dir} is not a complete index: run python -m experiments.index --index={index_dir}"
            )
        self.dir = index_dir
        self.meta = meta
        self.exact_max_items = exact_max_items
        self._tables: dict[str, Table] = {}

    @property
    def root(self) -> str:
        """The folder the items' paths are relative to."""
        source = self.meta["source"]
        return source if os.path.isdir(source) else os.path.dirname(source)

    def size(self, modality: str) -> int:
        return int(self.meta["items"].get(modality, 0))

    def table(self, modality: str) -> Table:
        if modality not in MODALITIES:
            raise ValueError(f"target {modality!r}: expected one of {MODALITIES}")
        if modality not in self._tables:
            self._tables[modality] = self._load(modality)
        return self._tables[modality]

    def embedder(self) -> Embedder:
        """The run that made the index (its workdir in index.json), restored to embed queries.
        ValueError if that run has since changed (another step or config)."""
        embedder = Embedder(self.meta["run"]["workdir"])
        made, now = self.meta["run"], embedder.settings()
        for key in ("step", "layer", "config_hash"):
            if made[key] != now[key]:
                raise ValueError(
                    f"the run in {made['workdir']} has {key} {now[key]!r}, the index was made at "
                    f"{made[key]!r}: index the folder again"
                )
        return embedder

    def search(self, query: np.ndarray, target: str, top_k: int = 5) -> list[Match]:
        """The top_k indexed items of `target` by cosine to the query embedding [D], best first."""
        if top_k < 1:
            raise ValueError(f"top_k must be positive, got {top_k}")
        table = self.table(target)
        if not len(table.paths):
            return []
        query = l2_normalize(np.asarray(query, np.float32)[None])[0]
        if table.faiss_index is None:
            cosines, rows = exact_top_k(table.embeddings, query, top_k)
        else:
            found, ids = faiss_top_k(table.faiss_index, query[None], top_k)
            keep = ids[0] >= 0
            cosines, rows = found[0][keep], ids[0][keep]
        return [
            Match(i + 1, float(c), target, str(table.paths[r]), str(table.captions[r]))
            for i, (c, r) in enumerate(zip(cosines, rows, strict=True))
        ]

    def _load(self, modality: str) -> Table:
        """The modality's rows of every shard, filled into one array (never held twice)."""
        n, dim = self.size(modality), int(self.meta["run"]["dim"])
        embeddings = np.empty((n, dim), np.float32)
        paths, captions, done = [], [], 0
        for shard in store.iter_shards(self.dir):
            if f"{modality}_embeddings" not in shard:
                continue
            rows = shard[f"{modality}_embeddings"]
            embeddings[done : done + len(rows)] = l2_normalize(rows.astype(np.float32))
            paths.append(shard[f"{modality}_paths"])
            captions.append(shard[f"{modality}_captions"])
            done += len(rows)
        if done != n:
            raise ValueError(
                f"{self.dir}: {done} {modality} rows in the shards, index.json says {n}"
            )
        table = Table(
            embeddings,
            np.concatenate(paths) if paths else np.array([], str),
            np.concatenate(captions) if captions else np.array([], str),
        )
        if n > self.exact_max_items:
            table.faiss_index = faiss_index(embeddings)
        return table
