"""Sentences to word-vector sequences from a plain vocabulary and table: the tokenizer and the lookup, with
no word2vec library (text.py wraps them for gensim's KeyedVectors; an exported inference bundle uses them
as they are).

Out-of-vocabulary policy: words without a vector are dropped (not zero-filled), then the remaining words
are truncated to max_words; a sentence left with no known word raises NoKnownWordError.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

import numpy as np


class NoKnownWordError(ValueError):
    """No word of the caption has a vector."""


def tokenize(text: str) -> list[str]:
    """Lowercased words: NFKC-normalized; anything but letters, marks and digits separates words."""
    if not isinstance(text, str):
        raise ValueError(f"a caption must be a str, got {type(text).__name__}")
    normalized = unicodedata.normalize("NFKC", text).casefold()
    kept = [ch if unicodedata.category(ch)[0] in "LMN" else " " for ch in normalized]
    return "".join(kept).split()


def sentence_vectors(
    text: str, index: Mapping[str, int], table: np.ndarray, max_words: int
) -> tuple[np.ndarray, np.ndarray]:
    """A caption -> (float32 [max_words, D] word vectors, bool [max_words] mask), zero-padded.

    index: word -> row of `table` (float32 [V, D]). Unknown words are dropped; ValueError if the caption
    is empty, NoKnownWordError if it has no known word.
    """
    words = tokenize(text)
    if not words:
        raise ValueError("caption is empty (no words)")
    known = [w for w in words if w in index][:max_words]
    if not known:
        raise NoKnownWordError(
            f"caption has no word with a vector (all {len(words)} out of vocabulary)"
        )
    out = np.zeros((max_words, table.shape[1]), dtype=np.float32)
    out[: len(known)] = table[[index[w] for w in known]]
    mask = np.zeros(max_words, dtype=bool)
    mask[: len(known)] = True
    if not np.all(np.isfinite(out)):
        raise ValueError("word vectors hold non-finite values")
    return out, mask
