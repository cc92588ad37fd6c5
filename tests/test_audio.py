"""Audio front end: decoding every supported format, crop/pad, spectrogram shape and finiteness."""

import numpy as np
import pytest
import soundfile

from data_pipelines import audio

CFG = audio.AudioConfig()  # world: 8 kHz, 1 s -> [64, 65]


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("suffix", "fmt", "subtype"),
    [(".wav", "WAV", "PCM_16"), (".flac", "FLAC", "PCM_16"), (".ogg", "OGG", "VORBIS"),
     (".mp3", "MP3", "MPEG_LAYER_III")],
)  # fmt: skip
def test_every_format_loads_resampled_to_mono(tmp_path, suffix, fmt, subtype):
    if fmt not in soundfile.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    path = tmp_path / f"tone{suffix}"
    stereo = np.stack([_tone(1.5, 16000), _tone(1.5, 16000)], axis=1)
    soundfile.write(path, stereo, 16000, format=fmt, subtype=subtype)
    wave = audio.load_audio(path, 8000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.shape[0] - 12000) < 1200  # lossy codecs pad a little
    features = audio.file_features(path, CFG)
    assert features.shape == (64, 65) and features.dtype == np.float32
    assert np.all(np.isfinite(features))


def test_spectrogram_peaks_at_the_tone_frequency():
    spec = audio.spectrogram(_tone(1.0, 8000, freq=1000.0), CFG)
    assert spec.shape == (64, 65)
    assert abs(np.mean(spec)) < 1e-5  # mean subtracted
    assert int(np.argmax(spec.mean(axis=0))) == 1000 * 128 // 8000


def test_paper_config_gives_500_by_257():
    cfg = audio.AudioConfig.paper()
    assert audio.waveform_features(_tone(5.0, cfg.sample_rate), cfg).shape == (500, 257)
    assert cfg.shape == (500, 257)


def test_crop_is_random_with_rng_and_centred_without():
    wave = np.arange(100, dtype=np.float32)
    assert np.array_equal(audio.crop_or_pad(wave, 10), wave[45:55])
    crops = {audio.crop_or_pad(wave, 10, np.random.default_rng(s))[0] for s in range(20)}
    assert len(crops) > 5
    padded = audio.crop_or_pad(wave[:4], 10)
    assert padded.shape == (10,) and np.array_equal(padded[3:7], wave[:4])


def test_integer_pcm_and_short_clips():
    pcm = (_tone(0.3, 8000) * 32767).astype(np.int16)
    features = audio.waveform_features(pcm, CFG)
    assert features.shape == (64, 65) and np.all(np.isfinite(features))


def test_log_eps_variant_is_finite_on_silence():
    cfg = audio.AudioConfig(log="log")
    assert np.all(np.isfinite(audio.spectrogram(np.zeros(8000), cfg)))


@pytest.mark.parametrize(
    ("samples", "error"),
    [(np.zeros(8000), audio.SilentAudioError), (np.array([]), ValueError),
     (np.array([0.1, np.nan]), ValueError), (np.array(["a"]), ValueError)],
)  # fmt: skip
def test_bad_waveforms_raise_value_error(samples, error):
    with pytest.raises(error):
        audio.waveform_features(samples, CFG)


def test_empty_corrupt_and_zero_length_files_raise(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    zero = tmp_path / "zero.wav"
    soundfile.write(zero, np.zeros(0, np.float32), 8000)
    for path in (empty, corrupt, zero, tmp_path / "missing.wav"):
        with pytest.raises(ValueError):
            audio.load_audio(path, 8000)


def test_config_from_mapping_keeps_defaults():
    cfg = audio.AudioConfig.from_config({"sample_rate": 16000, "time_steps": 10})
    assert cfg.sample_rate == 16000 and cfg.time_steps == 10 and cfg.n_fft == 128
    with pytest.raises(ValueError):
        audio.AudioConfig(log="sqrt")


def test_time_steps_must_hold_the_clip():
    audio.AudioConfig().check_time_steps()  # the world's 64 of a 1 s clip's 65 frames
    audio.AudioConfig.paper().check_time_steps()
    longer = dict(sample_rate=16000, n_fft=512, hop_length=256, clip_seconds=3.0)
    audio.AudioConfig(**longer, time_steps=188).check_time_steps()
    with pytest.raises(ValueError, match=r"cover 2\.00 s .*time_steps=188"):
        audio.AudioConfig(**longer, time_steps=126).check_time_steps()
    with pytest.raises(ValueError, match="time_steps=94"):  # frames past the end of a 1.5 s clip
        audio.AudioConfig(**{**longer, "clip_seconds": 1.5}, time_steps=126).check_time_steps()
