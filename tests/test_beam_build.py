"""A Beam build (DirectRunner) of a manifest, video or COCO folder is the one-process build: same splits,
rows, stored order, label names, word vectors and skipped.json; strict mode stops at a bad row with the
one-process error; build_data's --beam_pipeline_options runs it on parallel worker processes."""

import collections
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import audio, text
from data_pipelines.builders import beam_split, features
from data_pipelines.builders.coco import CocoCaptionsFolder, CocoConfig
from data_pipelines.builders.manifest import ManifestConfig, ManifestDataset
from data_pipelines.builders.skips import SKIP_REPORT_FILE, BadInputError, read_skip_report
from data_pipelines.builders.video_folder import VideoFolderConfig, VideoFolderDataset
from experiments.configs import own_data
from experiments.runtime import datasets
from fixtures import TINY_SIZES, write_fixture
from tests import helpers

LABELS, VECTORS = features.LABEL_NAMES_FILE, features.WORD_VECTORS_FILE
SPEC = features.FeatureSpec(
    image_size=16,
    audio=audio.AudioConfig(time_steps=64),
    text=text.TextConfig(max_words=8, word_dim=8, epochs=2),
)
DIRECT = "runner=DirectRunner"
OWN_DATA = "experiments/configs/own_data.py"


def _bad_rows(good: dict) -> list[str]:
    """jsonl lines that are skipped, given a good row: a missing file, an unreadable image, an empty
    caption, a line that is not JSON, unknown keys, an id whose first row is bad and whose second is
    kept (in both builds), and a copy of the good row (a duplicate id)."""
    rows = [
        {"id": "bad-missing", "image": "images/nowhere.png", "label": "zero"},
        {"id": "bad-image", "image": "garbage.png", "text": "a zero"},
        {"id": "bad-caption", "image": good["image"], "text": " ... ", "label": "one"},
        {"id": "bad-keys", "image": good["image"], "colour": "red"},
        {"id": "twice", "image": "images/nowhere.png"},
        {**good, "id": "twice"},
        good,
    ]
    return [json.dumps(row) for row in rows[:3]] + ["not json"] + [json.dumps(r) for r in rows[3:]]


# What the bad rows of train.jsonl and test.jsonl add up to (over all splits).
SKIPPED = {"missing_file": 4, "unreadable_image": 2, "empty_caption": 2, "bad_row": 2,
           "unknown_keys": 2, "duplicate_id": 2}  # fmt: skip


def _add_bad_rows(folder) -> None:
    """Slips the bad rows between the good ones of train.jsonl and test.jsonl, so that the stored
    positions have gaps."""
    (folder / "garbage.png").write_bytes(b"\x89PNG nonsense")
    for split in ("train", "test"):
        lines = (folder / f"{split}.jsonl").read_text().splitlines()
        bad = _bad_rows(json.loads(lines[0]))
        mixed = []
        for i, line in enumerate(lines):
            mixed.append(line)
            if i % 3 == 1 and bad:
                mixed.append(bad.pop(0))
        (folder / f"{split}.jsonl").write_text("\n".join(mixed + bad) + "\n")


def _manifest(folder, data_dir, *, beam: bool, strict: bool = False) -> ManifestDataset:
    config = ManifestConfig(name="m", folder=folder, spec=SPEC, validation_fraction=0.25)
    return ManifestDataset(data_dir=str(data_dir), config=config, beam=beam, strict=strict)


def _prepare(builder, beam_options: str | None) -> None:
    options = beam_split.pipeline_options(beam_options) if beam_options else None
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False, beam_options=options)
    )


def _rows(builder, split: str) -> list[dict]:
    return list(builder.as_data_source(split))


def assert_same_data_set(one, other, files=(LABELS, VECTORS, SKIP_REPORT_FILE)) -> None:
    """Same splits and shards, the same rows in the same stored order with every feature equal, and the
    same `files` beside them."""
    assert set(one.info.splits) == set(other.info.splits)
    for split in one.info.splits:
        a, b = one.info.splits[split], other.info.splits[split]
        assert (a.num_examples, a.shard_lengths) == (b.num_examples, b.shard_lengths), split
        rows_a, rows_b = _rows(one, split), _rows(other, split)
        assert [r["id"] for r in rows_a] == [r["id"] for r in rows_b], split
        for row_a, row_b in zip(rows_a, rows_b, strict=True):
            assert row_a.keys() == row_b.keys()
            for key in row_a:
                assert np.array_equal(row_a[key], row_b[key]), (split, row_a["id"], key)
    for name in files:
        assert _read(one, name) == _read(other, name), name
    assert sorted(os.listdir(one.data_dir)) == sorted(os.listdir(other.data_dir))


def _read(builder, name: str) -> bytes:
    with open(os.path.join(builder.data_dir, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
    """The tiny digits fixture, its validation rows held out of train.jsonl by the build."""
    folder = tmp_path_factory.mktemp("clean") / "digits"
    write_fixture("digits", str(folder), **{**TINY_SIZES, "validation_per_class": 0})
    return folder


@pytest.fixture(scope="module")
def folder(clean_folder, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("bad") / "digits"
    shutil.copytree(clean_folder, folder)
    _add_bad_rows(folder)
    return str(folder)


@pytest.fixture(scope="module")
def single_build(folder, tmp_path_factory):
    builder = _manifest(folder, tmp_path_factory.mktemp("single"), beam=False)
    _prepare(builder, None)
    return builder


def test_beam_build_equals_the_single_process_build(folder, single_build, tmp_path):
    builder = _manifest(folder, tmp_path, beam=True)
    _prepare(builder, DIRECT)
    assert_same_data_set(single_build, builder)
    report = read_skip_report(builder.data_dir)
    skipped: collections.Counter = collections.Counter()
    for counts in report["skipped"].values():
        skipped.update(counts)
    assert skipped == SKIPPED and set(report["examples"]) == set(SKIPPED)
    assert set(report["sounds"]) == {"train", "validation", "test"}  # fitted to the clip length
    ids = [r["id"].decode() for split in report["kept"] for r in _rows(builder, split)]
    assert ids.count("twice") == 2 and not any(i.startswith("bad-") for i in ids)  # train, test


def test_strict_beam_build_stops_with_the_one_process_error(clean_folder, tmp_path):
    folder = tmp_path / "folder"
    shutil.copytree(clean_folder, folder)
    with open(folder / "test.jsonl", "a") as f:
        f.write(json.dumps({"id": "bad", "image": "images/nowhere.png"}) + "\n")
    errors = []
    for beam in (False, True):
        builder = _manifest(str(folder), tmp_path / f"data-{beam}", beam=beam, strict=True)
        with pytest.raises(BadInputError) as err:
            _prepare(builder, DIRECT if beam else None)
        assert not datasets.is_built(builder)
        errors.append(str(err.value))
    assert (
        errors[0]
        == errors[1]
        == (f"{folder / 'images' / 'nowhere.png'}: missing_file: image file not found")
    )


def test_worker_bad_input_is_found_in_a_remote_traceback():
    traceback = (
        "Traceback (most recent call last):\n  File 'x.py', line 1, in f\n"
        "data_pipelines.builders.skips.BadInputError: /data/a.png: missing_file: image file not "
        "found\n\nDuring handling of the above exception, another exception occurred:\n"
    )
    found = beam_split.worker_bad_input(RuntimeError(traceback))
    assert str(found) == "/data/a.png: missing_file: image file not found"
    assert beam_split.worker_bad_input(RuntimeError("worker lost")) is None


def test_build_data_beam_flag_on_worker_processes(folder, tmp_path):
    options = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
    result = helpers.run_module(
        "experiments.build_data",
        f"--config={OWN_DATA}",
        f"--config.data.source={folder}",
        f"--config.data.data_dir={tmp_path / 'beam'}",
        f"--beam_pipeline_options={options}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "with Apache Beam" in output and "[test] kept" in output and "zero-padded" in output
    config = own_data.get_config()
    config.data.source, config.data.data_dir = folder, str(tmp_path / "single")
    single = datasets.build(config.data)
    config.data.data_dir = str(tmp_path / "beam")
    assert_same_data_set(single, datasets.open_built(config.data))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_video_folder_beam_build_equals_the_single_process_build(tmp_path):
    from tests.test_video import make_video

    for label, freq in (("bells", 440), ("dogs", 880)):
        os.makedirs(tmp_path / "videos" / label)
        make_video(tmp_path / "videos" / label / "clip.mp4", seconds=1.0, freq=freq)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"junk")
    built = []
    for beam in (False, True):
        config = VideoFolderConfig(name="v", folder=str(tmp_path / "videos"), spec=SPEC,
                                   frames_per_video=2, test_fraction=0.0)  # fmt: skip
        builder = VideoFolderDataset(data_dir=str(tmp_path / f"{beam}"), config=config, beam=beam)
        _prepare(builder, DIRECT if beam else None)
        built.append(builder)
    assert_same_data_set(*built, files=(LABELS, SKIP_REPORT_FILE))
    ids = sorted(r["id"].decode() for r in _rows(built[1], "train"))
    assert ids == ["bells/clip.mp4#0", "bells/clip.mp4#1", "dogs/clip.mp4#0", "dogs/clip.mp4#1"]
    assert read_skip_report(built[1].data_dir)["skipped"]["train"] == {"unreadable_sound": 1}


def test_coco_beam_build_equals_the_single_process_build(tmp_path):
    helpers.write_fake_coco(tmp_path / "coco")
    os.remove(tmp_path / "coco" / "train2017" / f"{1:012d}.jpg")  # two captions with a missing file
    built = []
    for beam in (False, True):
        config = CocoConfig(name="c", folder=str(tmp_path / "coco"), spec=SPEC)
        builder = CocoCaptionsFolder(data_dir=str(tmp_path / f"{beam}"), config=config, beam=beam)
        _prepare(builder, DIRECT if beam else None)
        built.append(builder)
    assert_same_data_set(*built)
    assert read_skip_report(built[1].data_dir)["skipped"] == {"train": {"missing_file": 2}}


def test_the_world_refuses_beam_in_one_line():
    from experiments.configs import world

    with pytest.raises(ValueError, match="Beam prepares manifest, video_folder and coco") as err:
        datasets.build(world.get_config().data, DIRECT)
    assert "\n" not in str(err.value)
