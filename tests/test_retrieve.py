"""Retrieval with a sentence, a sound file and an image file against a tiny checkpoint; the npz export."""

import numpy as np
import pytest
import soundfile
from PIL import Image

from experiments.search.index import SearchIndex, UnknownWordsError, query_inputs
from experiments.training import students
from tests import helpers

TOP_K = 5


@pytest.fixture(scope="module")
def run(tiny_world, tmp_path_factory):
    config = helpers.tiny_config(*tiny_world, total_steps=2, checkpoint_every=2, log_every=2)
    workdir = str(tmp_path_factory.mktemp("retrieve_run"))
    students.train(config, workdir)
    return config, workdir


@pytest.fixture(scope="module")
def index(run):
    return SearchIndex(*run)


def _check_matches(index, matches, target):
    assert [m.rank for m in matches] == list(range(1, TOP_K + 1))
    cosines = [m.cosine for m in matches]
    assert cosines == sorted(cosines, reverse=True)
    assert all(-1.0 - 1e-5 <= c <= 1.0 + 1e-5 for c in cosines)
    rows, _ = index.gallery(target)
    assert {m.id for m in matches} <= set(index.test["id"][rows])
    assert len({m.id for m in matches}) == TOP_K


def test_text_query(index):
    caption = str(index.test["caption"][np.flatnonzero(index.test["has_text"])[0]])
    modality, inputs = query_inputs(index.config, index.builder, sentence=caption + " qqzzx")
    assert modality == "text" and inputs["text_mask"].sum() >= 1
    _check_matches(index, index.search(modality, inputs, "image", TOP_K), "image")


def test_sound_file_query(index, tmp_path):
    rate = index.config.data.audio.sample_rate
    t = np.arange(rate) / rate
    path = str(tmp_path / "tone.wav")
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    modality, inputs = query_inputs(index.config, index.builder, sound_path=path)
    assert modality == "sound"
    assert inputs["sound"].shape == index.read(0, ["sound"])["sound"].shape
    _check_matches(index, index.search(modality, inputs, "text", TOP_K), "text")


def test_image_file_query_finds_itself(index, tmp_path):
    row = int(np.flatnonzero(index.test["has_image"])[3])
    path = str(tmp_path / "query.png")
    Image.fromarray(index.read(row, ["image"])["image"][0]).save(path)
    modality, inputs = query_inputs(index.config, index.builder, image_path=path)
    assert modality == "image"
    matches = index.search(modality, inputs, "image", TOP_K)
    _check_matches(index, matches, "image")
    # The stored image itself is in the gallery: it is (one of) the best matches, at cosine 1.
    assert matches[0].cosine == pytest.approx(1.0, abs=1e-4)
    assert index.test["id"][row] in {m.id for m in matches if m.cosine > 1 - 1e-4}
    _check_matches(index, index.search(modality, inputs, "sound", TOP_K), "sound")


def test_unknown_words_are_a_clear_error(index):
    with pytest.raises(UnknownWordsError, match="vocabulary"):
        query_inputs(index.config, index.builder, sentence="qqzzx blorfv")
    with pytest.raises(ValueError, match="exactly one"):
        query_inputs(index.config, index.builder)


def test_export_loads_without_pickle(index, tmp_path):
    path = str(tmp_path / "out" / "embeddings.npz")
    index.export(path)
    with np.load(path, allow_pickle=False) as saved:
        for modality in ("image", "sound", "text"):
            rows = np.flatnonzero(index.test[f"has_{modality}"])
            reps = saved[f"{modality}_fc7"]
            assert reps.shape == (len(rows), index.config.model.fc_dims[1])
            assert reps.dtype == np.float32 and np.all(np.isfinite(reps))
            np.testing.assert_array_equal(saved[f"{modality}_ids"], index.test["id"][rows])
            np.testing.assert_array_equal(saved[f"{modality}_labels"], index.test["label"][rows])
        assert saved["text_captions"].dtype.kind == "U"


def test_command_line(run, tiny_world, tmp_path):
    path = str(tmp_path / "cli.npz")
    argv = ["retrieve", *helpers.config_flags(*tiny_world), f"--workdir={run[1]}"]
    argv += ["--query_text=a big red dog", "--target=sound", "--top_k=3", f"--export={path}"]
    # A process of its own, as a user runs it (flags parsed in this one would stay for other tests).
    done = helpers.run_module("experiments.retrieve", *argv[1:], timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("text query -> test sound")
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    with np.load(path, allow_pickle=False) as saved:
        assert "sound_fc7" in saved.files
