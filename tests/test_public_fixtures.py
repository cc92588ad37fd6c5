"""Spoken-word fixtures in ESC-50's and Clotho's layouts, read back by the public-set loaders."""

import csv
import os
import re

import numpy as np
import pytest
import soundfile

from data_pipelines import public_sets
from fixtures import digits, glyphs
from fixtures.public_layouts import write_clotho_fixture, write_esc50_fixture

ESC50_NAME = re.compile(r"^(\d+)-(\d+)-([A-H])-(\d+)\.wav$")


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    folder = tmp_path_factory.mktemp("esc50")
    counts = write_esc50_fixture(
        folder, sources_per_class=2, takes_per_source=2, folds=2, clip_seconds=1.5
    )
    return folder, counts


def test_esc50_fixture_layout(esc50):
    folder, counts = esc50
    assert counts == {"kind": "digits", "classes": 10, "clips": 40, "folds": 2}
    with open(folder / "meta" / "esc50.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert [row[0] for row in rows[1:]] == sorted(os.listdir(folder / "audio"))
    for name, fold, target, category, esc10, src_file, take in rows[1:]:
        assert ESC50_NAME.match(name).groups() == (fold, src_file, take, target)
        assert category == digits.CLASSES[int(target)] and esc10 == "True"
    # A source recording (one voice) lies in one fold: its takes are not split across folds.
    folds_of_source = {}
    for row in rows[1:]:
        folds_of_source.setdefault(row[5], set()).add(row[1])
    assert all(len(f) == 1 for f in folds_of_source.values()) and len(folds_of_source) == 20


def test_esc50_fixture_audio_and_loader(esc50):
    folder, _ = esc50
    data = public_sets.load_esc50(folder)
    assert data.class_names == digits.CLASSES and len(data.clips) == 40
    assert data.skipped.total == 0
    assert sorted(set(data.folds.tolist())) == [1, 2]
    wave, rate = soundfile.read(data.paths[0], always_2d=True)
    info = soundfile.info(data.paths[0])
    assert (rate, wave.shape, info.subtype) == (44100, (66150, 1), "PCM_16")
    loud = np.abs(wave[:, 0]) > 1e-3
    assert 0.1 < loud.mean() < 1.0  # speech inside digital silence
    # Takes of one source share a voice but say different things or differ in noise: not copies.
    first, second = (soundfile.read(p)[0] for p in data.paths[:2])
    assert not np.array_equal(first, second)


def test_esc50_fixture_is_deterministic_and_refuses_a_full_folder(esc50, tmp_path):
    folder, _ = esc50
    write_esc50_fixture(
        tmp_path, sources_per_class=2, takes_per_source=2, folds=2, clip_seconds=1.5
    )
    for name in sorted(os.listdir(folder / "audio"))[:3]:
        a, _ = soundfile.read(folder / "audio" / name)
        b, _ = soundfile.read(tmp_path / "audio" / name)
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError, match="not empty"):
        write_esc50_fixture(tmp_path, sources_per_class=1, takes_per_source=1, folds=1)


def test_clotho_fixture_round_trip(tmp_path):
    counts = write_clotho_fixture(tmp_path, "glyphs", clips_per_class=1, clip_seconds=1.0)
    data = public_sets.load_clotho(tmp_path)
    assert counts == {"kind": "glyphs", "clips": 12, "captions": 60}
    assert len(data.items) == 12 and len(data.captions) == 60 and data.skipped.total == 0
    assert all(" " in name for name in data.item_ids)  # file names with spaces, as Clotho's
    # Every caption of a clip names its class, and the twelve clips name the twelve classes.
    named = []
    for item, caption_ids in enumerate(data.item_captions()):
        texts = [data.captions[j] for j in caption_ids]
        assert len(texts) == 5
        word = texts[0].split()[-1]  # "a voice says {w}"
        assert all(word in text.replace(",", " ").split() for text in texts), item
        named.append(word)
    assert sorted(named) == sorted(glyphs.CLASSES)
