"""Video front end: frames and the audio window around each, through ffmpeg."""

import shutil
import subprocess

import numpy as np
import pytest

from data_pipelines import audio, video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
CFG = audio.AudioConfig()


def make_video(path, seconds: float = 2.0, with_audio: bool = True, freq: int = 440) -> str:
    """A small mp4: ffmpeg's test pattern, plus a sine tone when with_audio."""
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size=64x48:rate=10:duration={seconds}"]  # fmt: skip
    if with_audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=8000:duration={seconds}"]
    args += ["-c:v", "mpeg4", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-shortest"] if with_audio else []
    subprocess.run([*args, str(path)], check=True)
    return str(path)


def test_pairs_have_frames_and_audio_windows(tmp_path):
    path = make_video(tmp_path / "clip.mp4")
    pairs = video.sample_pairs(path, 3, CFG)
    assert [round(p.time_seconds, 2) for p in pairs] == pytest.approx(
        [0.33, 1.0, 1.67], abs=0.06
    )  # aac pads the start
    for pair in pairs:
        assert pair.image.shape == (48, 64, 3) and pair.image.dtype == np.uint8
        assert pair.waveform.shape == (CFG.clip_samples,) and pair.waveform.dtype == np.float32
        assert np.abs(pair.waveform).max() > 0.1
    spec = audio.waveform_features(pairs[1].waveform, CFG)
    assert int(np.argmax(spec.mean(axis=0))) == round(440 * 128 / 8000)


def test_video_without_audio_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="no audio"):
        video.sample_pairs(make_video(tmp_path / "mute.mp4", with_audio=False), 2, CFG)


def test_unreadable_video_is_a_value_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="ffmpeg cannot read"):
        video.sample_pairs(bad, 2, CFG)


def test_missing_ffmpeg_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="ffmpeg was not found"):
        video.ffmpeg_binary()
