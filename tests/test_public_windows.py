"""Clips of any length to model-sized windows, window embeddings pooled per clip."""

import numpy as np
import pytest
import soundfile

from data_pipelines.audio import AudioConfig, SilentAudioError, waveform_features
from data_pipelines.public_sets import windows


def test_short_clip_is_one_centred_padded_window():
    out = windows.clip_windows(np.ones(6, np.float32), 10)
    np.testing.assert_array_equal(out, [[0, 0, 1, 1, 1, 1, 1, 1, 0, 0]])
    assert out.dtype == np.float32


def test_exact_clip_is_one_window():
    wave = np.linspace(-0.5, 0.5, 10)
    np.testing.assert_allclose(windows.clip_windows(wave, 10), wave[None], rtol=1e-6)


@pytest.mark.parametrize("length, count", [(11, 2), (20, 2), (25, 3), (30, 3), (31, 4)])
def test_long_clip_gives_ceil_windows_and_ends_at_its_end(length, count):
    wave = np.arange(1, length + 1, dtype=np.float32) / length
    out = windows.clip_windows(wave, 10)
    assert out.shape == (count, 10)
    np.testing.assert_array_equal(out[0], wave[:10])
    np.testing.assert_array_equal(out[-1], wave[-10:])  # full of signal, not padded
    assert (out != 0).all()


def test_hop_overlaps_windows():
    assert windows.window_starts(25, 10, hop=5) == [0, 5, 10, 15]
    assert windows.window_starts(27, 10, hop=5) == [0, 5, 10, 15, 17]
    assert windows.window_starts(7, 10, hop=5) == [0]
    with pytest.raises(ValueError):
        windows.window_starts(25, 10, hop=0)


def test_stereo_is_downmixed():
    stereo = np.stack([np.full(15, 0.2), np.full(15, 0.6)], axis=1)
    np.testing.assert_allclose(windows.to_mono(stereo), np.full(15, 0.4))
    out = windows.clip_windows(stereo, 10)
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out, 0.4)


def test_pool_windows_mean_and_max():
    embeddings = np.array([[1.0, 0], [3, 2], [5, -1], [0, 4], [2, 2], [-2, 6]])
    np.testing.assert_allclose(
        windows.pool_windows(embeddings, [2, 1, 3], "mean"), [[2, 1], [5, -1], [0, 4]]
    )
    np.testing.assert_allclose(
        windows.pool_windows(embeddings, [2, 1, 3], "max"), [[3, 2], [5, -1], [2, 6]]
    )
    with pytest.raises(ValueError, match="sum to 6"):
        windows.pool_windows(embeddings, [2, 2], "mean")
    with pytest.raises(ValueError, match="pooling"):
        windows.pool_windows(embeddings, [6], "median")


def test_file_windows_leave_out_digital_silence(tmp_path):
    cfg = AudioConfig()  # 8 kHz, 1 s windows
    rng = np.random.default_rng(0)
    wave = np.zeros(int(3.5 * 16000), np.float32)  # at 16 kHz: the file is resampled
    wave[: 16000 + 8000] = 0.3 * rng.standard_normal(24000)  # sound in the first 1.5 s only
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), np.stack([wave, wave], axis=1), 16000)  # stereo
    out = windows.file_windows(path, cfg)
    assert out.shape == (2, *cfg.shape)  # 4 windows, the last two silent
    resampled = windows.clip_windows(np.zeros(28000), cfg.clip_samples)
    assert resampled.shape[0] == 4
    soundfile.write(str(path), np.zeros(16000, np.float32), 16000)
    with pytest.raises(SilentAudioError, match="every window is silent"):
        windows.file_windows(path, cfg)
    # A clip of exactly one window gives the features training stores.
    sound = (0.3 * rng.standard_normal(8000)).astype(np.float32)
    soundfile.write(str(path), sound, 8000, subtype="FLOAT")
    np.testing.assert_allclose(
        windows.file_windows(path, cfg)[0], waveform_features(sound, cfg), atol=1e-6
    )
