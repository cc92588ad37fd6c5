"""Training-stream augmentation: what each transform does, and that batches stay a function of (seed, step)."""

import numpy as np
import pytest

from data_pipelines import augment, input_pipeline
from tests import helpers

CFG = augment.AugmentConfig(
    image_shift=2, image_flip=True, sound_steps=12, time_masks=1, time_mask_width=3,
    freq_masks=1, freq_mask_width=2, word_dropout=0.3,
)  # fmt: skip


def _batch(rng, b=8):
    return {
        "image": rng.integers(0, 255, (b, 6, 6, 3), dtype=np.uint8),
        "sound": rng.normal(size=(b, 16, 9)).astype(np.float32) + 5.0,
        "text": rng.normal(size=(b, 6, 5)).astype(np.float32),
        "text_mask": np.arange(6)[None] < rng.integers(1, 7, (b, 1)),
    }


def test_shift_and_flip_move_pixels_and_fill_with_edges():
    image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    down = augment.shift_and_flip(image, np.array([[1, 0]]), np.array([False]), 1)
    np.testing.assert_array_equal(down[0, :, :, 0], [[4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15],
                                                     [12, 13, 14, 15]])  # fmt: skip
    flipped = augment.shift_and_flip(image, np.array([[0, 0]]), np.array([True]), 1)
    np.testing.assert_array_equal(flipped[0, :, :, 0], image[0, :, ::-1, 0])


def test_masks_zero_whole_bands():
    sound = np.ones((1, 10, 4), np.float32)
    timed = augment.mask_bands(sound, 1, np.array([[2]]), np.array([[3]]))
    assert np.all(timed[0, 2:5] == 0) and np.all(timed[0, :2] == 1) and np.all(timed[0, 5:] == 1)
    freq = augment.mask_bands(sound, 2, np.array([[1]]), np.array([[2]]))
    assert np.all(freq[0, :, 1:3] == 0) and np.all(freq[0, :, [0, 3]] == 1)


def test_word_dropout_keeps_order_and_at_least_one_word():
    text = np.arange(4, dtype=np.float32).reshape(1, 4, 1) + 1
    mask = np.array([[True, True, True, False]])
    new_text, new_mask = augment.drop_words(text, mask, np.array([[False, True, False, False]]))
    np.testing.assert_array_equal(new_mask, [[True, True, False, False]])
    np.testing.assert_array_equal(new_text[0, :, 0], [1, 3, 0, 0])
    _, none_left = augment.drop_words(text, mask, np.ones((1, 4), bool))
    np.testing.assert_array_equal(none_left, [[True, False, False, False]])


def test_augmented_rows_depend_on_the_global_row_not_the_host():
    rng = np.random.default_rng(0)
    batch = _batch(rng)
    whole = augment.augment(batch, CFG, augment.batch_rng(3, 0, 11), 8, slice(0, 8))
    halves = [
        augment.augment(
            {k: v[h * 4 : (h + 1) * 4] for k, v in batch.items()},
            CFG,
            augment.batch_rng(3, 0, 11),
            8,
            slice(h * 4, (h + 1) * 4),
        )  # fmt: skip
        for h in range(2)
    ]
    for name in whole:
        np.testing.assert_array_equal(np.concatenate([h[name] for h in halves]), whole[name])
    assert whole["sound"].shape == (8, 12, 9)
    again = augment.augment(batch, CFG, augment.batch_rng(3, 0, 11), 8, slice(0, 8))
    other_step = augment.augment(batch, CFG, augment.batch_rng(3, 0, 12), 8, slice(0, 8))
    assert all(np.array_equal(again[k], whole[k]) for k in whole)
    assert not np.array_equal(other_step["image"], whole["image"])


def test_identity_config_is_skipped():
    assert augment.AugmentConfig(sound_steps=16).is_identity(16)
    assert not augment.AugmentConfig(sound_steps=12).is_identity(16)
    assert not augment.AugmentConfig(word_dropout=0.1).is_identity(16)


@pytest.fixture(scope="module")
def data_dir(tiny_world):
    from experiments.runtime import datasets

    return datasets.make_builder(helpers.tiny_config(*tiny_world).data)


def test_augmented_stream_resumes_exactly(data_dir):
    cfg = augment.AugmentConfig(image_shift=2, image_flip=True, sound_steps=12, word_dropout=0.2)

    def take(start, n):
        it = input_pipeline.train_batches(data_dir, 16, seed=1, start_step=start, augment=cfg)
        return [next(it) for _ in range(n)]

    straight, resumed = take(0, 4), take(2, 2)
    for a, b in zip(straight[2:], resumed, strict=True):
        for stream in a:
            for name in a[stream]:
                np.testing.assert_array_equal(a[stream][name], b[stream][name])
    assert straight[0]["image_sound"]["sound"].shape[1] == 12
    plain = next(input_pipeline.train_batches(data_dir, 16, seed=1))
    assert not np.array_equal(plain["image_text"]["image"], straight[0]["image_text"]["image"])
