"""Sentences to word-vector sequences: tokenizer, word2vec vectors (loaded or trained), padding and mask.

Out-of-vocabulary policy: words without a vector are dropped (not zero-filled), then the remaining words
are truncated to max_words; a sentence left with no known word raises ValueError (a builder skips it).
Word vectors are stored only in the word2vec formats (text or binary). gensim's own .model/.kv files are
pickles and are refused: unpickling a file runs arbitrary code.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from gensim.models import KeyedVectors, Word2Vec

from data_pipelines import paths
from data_pipelines.words import NoKnownWordError as NoKnownWordError
from data_pipelines.words import sentence_vectors
from data_pipelines.words import tokenize as tokenize

ACCEPTED_FORMATS = "word2vec text format (.txt/.vec) or word2vec binary format (.bin)"
_PICKLE_SUFFIXES = (".model", ".kv", ".pkl", ".pickle", ".npy", ".npz")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Sentence shape and, when vectors are trained, the word2vec settings (deterministic: one worker)."""

    max_words: int = 12
    word_dim: int = 32
    window: int = 5
    min_count: int = 1
    epochs: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_words <= 0 or self.word_dim <= 0:
            raise ValueError(f"invalid text config: {self}")

    @property
    def shape(self) -> tuple[int, int]:
        """The stored sentence shape [max_words, word_dim]."""
        return (self.max_words, self.word_dim)

    @classmethod
    def paper(cls) -> TextConfig:
        return cls(max_words=16, word_dim=300)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Any) -> TextConfig:
        """Builds from a ConfigDict or mapping (config.data.text); missing optional keys keep defaults."""
        names = [f.name for f in dataclasses.fields(cls)]
        getter = cfg.get if isinstance(cfg, Mapping) else lambda k, d: getattr(cfg, k, d)
        values = {name: getter(name, None) for name in names}
        return cls(**{k: v for k, v in values.items() if v is not None})


def train_word_vectors(sentences: Iterable[str], cfg: TextConfig) -> KeyedVectors:
    """Trains word2vec (skip-gram) on tokenized sentences; same sentences + cfg give the same vectors."""
    corpus = [words for words in (tokenize(s) for s in sentences) if words]
    if not corpus:
        raise ValueError("no words to train word vectors on")
    model = Word2Vec(
        sentences=corpus,
        vector_size=cfg.word_dim,
        window=cfg.window,
        min_count=cfg.min_count,
        epochs=cfg.epochs,
        seed=cfg.seed,
        workers=1,
        sg=1,
    )
    return model.wv


def center_and_normalize(vectors: KeyedVectors) -> KeyedVectors:
    """Vectors minus their mean over the vocabulary, scaled to norm sqrt(D) (a new KeyedVectors).

    word2vec trained on a few hundred captions leaves every vector close to one shared direction
    (cosine about 0.99 between any two words), so the words look alike to the text tower; removing the
    common mean (as in "all-but-the-top", Mu and Viswanath 2018) keeps what tells them apart.
    """
    values = vectors.vectors - vectors.vectors.mean(axis=0, keepdims=True)
    # Norm sqrt(D): about unit variance per input channel, the scale of the other towers' inputs.
    scale = np.sqrt(vectors.vector_size)
    values *= scale / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)
    out = KeyedVectors(vectors.vector_size)
    out.add_vectors(list(vectors.index_to_key), values.astype(np.float32))
    return out


def _looks_pickled(path: str) -> bool:
    with paths.as_path(path).open("rb") as f:
        head = f.read(2)
    # Pickle protocols 2-5 start with PROTO (0x80) then the protocol number.
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_word_vectors(path: str | os.PathLike) -> KeyedVectors:
    """Loads word2vec vectors (text or binary format) from a local path or a URI (gs://...; copied to a
    local temporary file first, as gensim reads local files). Refuses pickle-based files with a
    ValueError."""
    path = os.fspath(path)
    if not paths.as_path(path).is_file():
        raise ValueError(f"word vector file not found: {path}")
    if path.endswith(_PICKLE_SUFFIXES) or _looks_pickled(path):
        raise ValueError(
            f"refusing to load {path}: it is (or may be) a pickle, and pickles are never loaded. "
            f"Accepted: {ACCEPTED_FORMATS}. Convert with gensim: "
            "KeyedVectors.load(p).save_word2vec_format(out, binary=True) in an environment you trust."
        )
    order = (True, False) if path.endswith(".bin") else (False, True)
    errors = []
    with paths.local_copy(path) as local:
        for binary in order:
            try:
                vectors = KeyedVectors.load_word2vec_format(local, binary=binary)
            except (ValueError, UnicodeDecodeError, EOFError, IndexError) as err:
                errors.append(f"{'binary' if binary else 'text'}: {err}")
                continue
            if len(vectors) == 0:
                raise ValueError(f"word vector file {path} holds no words")
            return vectors
    raise ValueError(f"cannot read {path} as {ACCEPTED_FORMATS} ({'; '.join(errors)})")


def save_word_vectors(vectors: KeyedVectors, path: str | os.PathLike, binary: bool = False) -> None:
    """Writes vectors in word2vec format (text by default: portable and diff-able) to a local path or
    a URI."""
    with paths.local_output(path) as local:
        vectors.save_word2vec_format(local, binary=binary)


def embed_sentence(
    text: str, vectors: KeyedVectors, max_words: int
) -> tuple[np.ndarray, np.ndarray]:
    """A caption -> (float32 [max_words, D] word vectors, bool [max_words] mask), zero-padded
    (words.sentence_vectors over the vectors' vocabulary: data_pipelines/words.py).

    Unknown words are dropped; ValueError if the caption is empty or has no known word.
    """
    return sentence_vectors(text, vectors.key_to_index, vectors.vectors, max_words)
