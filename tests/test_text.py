"""Text front end: tokenizer, deterministic word2vec, word2vec file formats, pickle refusal, OOV policy."""

import pickle

import numpy as np
import pytest
from gensim.models import KeyedVectors

from data_pipelines import text

CFG = text.TextConfig(max_words=5, word_dim=8, epochs=3)
SENTENCES = [
    "a red dog barks in the park",
    "a small blue bird sings",
    "the big green car honks",
] * 20


@pytest.fixture(scope="module")
def vectors():
    return text.train_word_vectors(SENTENCES, CFG)


def test_tokenizer_lowercases_and_strips_punctuation():
    assert text.tokenize("The DOG's ball, (red)!  Café—naïve") == [
        "the",
        "dog",
        "s",
        "ball",
        "red",
        "café",
        "naïve",
    ]
    assert text.tokenize("数字 ２３ ok") == ["数字", "23", "ok"]
    assert text.tokenize(" ...!? ") == []


def test_training_is_deterministic(vectors):
    again = text.train_word_vectors(SENTENCES, CFG)
    assert np.array_equal(vectors.vectors, again.vectors)
    assert vectors.vector_size == 8 and "dog" in vectors.key_to_index


def test_embed_drops_unknown_words_pads_and_truncates(vectors):
    out, mask = text.embed_sentence("A red zebra dog", vectors, max_words=5)
    assert out.shape == (5, 8) and out.dtype == np.float32 and mask.dtype == bool
    assert mask.tolist() == [True, True, True, False, False]
    assert np.array_equal(out[2], vectors["dog"]) and not out[3:].any()
    long, long_mask = text.embed_sentence(" ".join(["dog"] * 9), vectors, max_words=5)
    assert long_mask.all()


@pytest.mark.parametrize("caption", ["", "   ", "!!!"])
def test_empty_caption_raises(vectors, caption):
    with pytest.raises(ValueError, match="empty"):
        text.embed_sentence(caption, vectors, 5)


def test_all_unknown_caption_raises(vectors):
    with pytest.raises(text.NoKnownWordError):
        text.embed_sentence("zebra xylophone", vectors, 5)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_formats_round_trip(vectors, tmp_path, binary):
    path = tmp_path / ("v.bin" if binary else "v.txt")
    text.save_word_vectors(vectors, path, binary=binary)
    loaded = text.load_word_vectors(path)
    assert np.allclose(loaded["dog"], vectors["dog"], atol=1e-5)


def test_pickles_are_refused(vectors, tmp_path):
    native = tmp_path / "vectors.kv"
    vectors.save(str(native))  # gensim's own pickle-based format
    disguised = tmp_path / "vectors.txt"
    disguised.write_bytes(pickle.dumps({"dog": [1.0]}))
    for path in (native, disguised):
        with pytest.raises(ValueError, match="word2vec text format"):
            text.load_word_vectors(path)


def test_garbage_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.txt"
    path.write_bytes(b"not vectors at all\n\xff\xfe")
    with pytest.raises(ValueError, match="word2vec"):
        text.load_word_vectors(path)


def test_centring_separates_words_that_share_one_direction():
    sentences = [f"a {c} {a} here" for c in ("red", "blue") for a in ("dog", "cat")]
    vectors = text.train_word_vectors(sentences * 5, text.TextConfig(word_dim=8, epochs=1))
    centred = text.center_and_normalize(vectors)
    assert centred.index_to_key == vectors.index_to_key
    np.testing.assert_allclose(np.linalg.norm(centred.vectors, axis=1), np.sqrt(8), rtol=1e-5)

    # Vectors crowded around one shared direction, as word2vec leaves them on a few hundred captions.
    def mean_cosine(kv):
        unit = kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)
        cos = unit @ unit.T
        return cos[~np.eye(len(cos), dtype=bool)].mean()

    shared = vectors.vectors + 10.0 * np.ones(8, np.float32)
    crowded = KeyedVectors(8)
    crowded.add_vectors(list(vectors.index_to_key), shared)
    assert mean_cosine(crowded) > 0.95
    assert mean_cosine(text.center_and_normalize(crowded)) < 0.2
