"""Property tests: any input to a front end gives a valid output or a ValueError, never another exception."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from data_pipelines import audio, text, vision

FUZZ = settings(max_examples=50, deadline=None)
CFG = audio.AudioConfig(n_fft=32, hop_length=16, clip_seconds=0.05, time_steps=20, sample_rate=8000)

audio_arrays = st.one_of(
    hnp.arrays(
        dtype=st.sampled_from([np.float16, np.float32, np.float64]),
        shape=st.tuples(st.integers(0, 3000)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=16),
    ),
    hnp.arrays(
        dtype=st.sampled_from([np.int16, np.int32, np.uint8, np.int64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=500),
    ),
    hnp.arrays(dtype=np.float64, shape=st.tuples(st.integers(1, 600)),
               elements=st.floats(-1e300, 1e300)),
)  # fmt: skip


@FUZZ
@given(samples=audio_arrays, random_crop=st.booleans())
def test_audio_gives_finite_spectrogram_or_value_error(samples, random_crop):
    rng = np.random.default_rng(0) if random_crop else None
    try:
        out = audio.waveform_features(samples, CFG, rng)
    except ValueError:
        return
    assert out.shape == CFG.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))


@pytest.fixture(scope="module")
def vectors():
    return text.train_word_vectors(
        ["a red dog", "une forêt verte", "大きな 犬"] * 5, text.TextConfig(word_dim=4, epochs=1)
    )


@FUZZ
@given(caption=st.text(max_size=60))
def test_captions_give_vectors_and_mask_or_value_error(vectors, caption):
    try:
        out, mask = text.embed_sentence(caption, vectors, max_words=6)
    except ValueError:
        return
    assert out.shape == (6, 4) and out.dtype == np.float32 and mask.shape == (6,)
    assert mask.any() and np.all(np.isfinite(out)) and not out[~mask].any()


image_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=12),
)


@FUZZ
@given(image=image_arrays, size=st.integers(1, 9))
def test_images_give_uint8_square_or_value_error(image, size):
    try:
        out = vision.resize_and_crop(image, size)
    except ValueError:
        return
    assert out.shape == (size, size, 3) and out.dtype == np.uint8


@FUZZ
@given(data=st.binary(max_size=200))
def test_encoded_bytes_decode_or_value_error(data):
    try:
        out = vision.load_image(data, 8)
    except ValueError:
        return
    assert out.shape == (8, 8, 3)
