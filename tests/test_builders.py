"""TFDS builders: the world, a manifest folder (with every kind of bad row), a video folder, COCO."""

import dataclasses
import glob
import io
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import soundfile
from PIL import Image

from data_pipelines import audio, records, text
from data_pipelines.builders import features, teacher_probs
from data_pipelines.builders.coco import CocoCaptionsFolder, CocoConfig
from data_pipelines.builders.manifest import ManifestConfig, ManifestDataset
from data_pipelines.builders.skips import (
    BadInputError,
    EmptySplitError,
    Outcome,
    SkipReport,
    read_skip_report,
)
from data_pipelines.builders.video_folder import VideoFolderConfig, VideoFolderDataset
from data_pipelines.builders.world_dataset import WorldBuilderConfig, WorldDataset
from data_pipelines.world import World, WorldConfig
from tests import helpers

SPEC = features.FeatureSpec(
    image_size=16,
    audio=audio.AudioConfig(time_steps=64),
    text=text.TextConfig(max_words=8, word_dim=8, epochs=2),
)
TINY_WORLD = WorldConfig.small(num_train_sound=24, num_train_text=24, num_validation=8, num_test=16)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    config = WorldBuilderConfig.make("tiny", TINY_WORLD, background_sentences=200)
    builder = WorldDataset(data_dir=str(tmp_path_factory.mktemp("world")), config=config)
    builder.download_and_prepare()
    return builder


def test_world_builds_every_split_with_contract_features(world_dir):
    info = world_dir.info
    assert {s: info.splits[s].num_examples for s in info.splits} == {
        "train": 48,
        "validation": 8,
        "test": 16,
    }
    rows = list(world_dir.as_data_source("train"))
    assert sum(r["has_sound"] for r in rows) == 24 and sum(r["has_text"] for r in rows) == 24
    assert all(r["has_image"] and r["has_sound"] != r["has_text"] for r in rows)
    first = rows[0]
    assert first["image"].shape == (40, 40, 3) and first["image"].dtype == np.uint8
    assert first["sound"].shape == (64, 65) and first["sound"].dtype == np.float32
    assert first["text"].shape == (16, 32) and first["text_mask"].dtype == bool
    for r in rows:
        assert np.all(np.isfinite(r["sound"])) and np.all(np.isfinite(r["text"]))
        assert (r["text_mask"].any() == r["has_text"]) and r["label"] >= 0 and r["fine_label"] >= 0
    test = list(world_dir.as_data_source("test"))
    assert all(r["has_image"] and r["has_sound"] and r["has_text"] for r in test)


def test_world_saves_word_vectors_and_label_names(world_dir):
    vectors = features.load_dataset_word_vectors(world_dir.data_dir)
    assert vectors.vector_size == 32 and "red" in vectors.key_to_index
    names = features.load_label_names(world_dir.data_dir)
    assert len(names["labels"]) == TINY_WORLD.num_concepts
    assert len(names["fine_labels"]) == TINY_WORLD.num_concepts * TINY_WORLD.variants_per_concept
    assert read_skip_report(world_dir.data_dir)["total_skipped"] == 0


def test_world_is_deterministic(world_dir, tmp_path):
    config = WorldBuilderConfig.make("tiny", TINY_WORLD, background_sentences=200)
    again = WorldDataset(data_dir=str(tmp_path), config=config)
    again.download_and_prepare()
    a = next(iter(world_dir.as_data_source("test")))
    b = next(iter(again.as_data_source("test")))
    assert (
        a["id"] == b["id"]
        and np.array_equal(a["text"], b["text"])
        and np.array_equal(a["sound"], b["sound"])
    )


def test_float16_storage_halves_sound_and_text_and_reads_back_as_float32(world_dir, tmp_path):
    spec = dataclasses.replace(world_dir.builder_config.spec, float_storage="float16")
    config = WorldBuilderConfig.make("tiny16", TINY_WORLD, background_sentences=200, spec=spec)
    compact = WorldDataset(data_dir=str(tmp_path), config=config)
    compact.download_and_prepare()
    assert compact.info.features["sound"].np_dtype == np.float16
    names = ("sound", "text", "image")
    full, half = (records.Records(b, "test").read_all(names) for b in (world_dir, compact))
    for name in ("sound", "text"):
        assert half[name].dtype == np.float32
        np.testing.assert_array_equal(half[name], full[name].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(half["image"], full["image"])
    size = lambda b: sum(os.path.getsize(f) for f in glob.glob(os.path.join(b.data_dir, "*test*")))
    assert size(compact) < 0.8 * size(world_dir)
    with pytest.raises(ValueError, match="float_storage='bfloat16'"):
        dataclasses.replace(spec, float_storage="bfloat16")


def test_builtin_configs_exist():
    names = [c.name for c in WorldDataset.BUILDER_CONFIGS]
    assert (
        names == ["small", "default", "full"]
        and WorldDataset.DEFAULT_BUILDER_CONFIG_NAME == "default"
    )


# ---------------------------------------------------------------- manifest folders and bad input


def _png(path, size=(20, 12)):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)).save(
        path
    )


def _wav(path, seconds=0.5, silent=False):
    t = np.arange(int(8000 * seconds)) / 8000
    wave = np.zeros_like(t) if silent else 0.5 * np.sin(2 * np.pi * 300 * t)
    soundfile.write(path, wave, 8000)


def _good_folder(root) -> str:
    root = str(root)
    os.makedirs(root, exist_ok=True)
    _png(os.path.join(root, "a.png"))
    _wav(os.path.join(root, "a.wav"))
    train = [
        {"id": "t0", "image": "a.png", "sound": "a.wav", "label": "dog"},
        {"id": "t1", "image": "a.png", "text": "a red dog barks", "label": "dog"},
        {
            "id": "t2",
            "image": "a.png",
            "sound": "a.wav",
            "text": "a blue bird sings",
            "label": "bird",
        },
    ]
    with open(os.path.join(root, "train.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in train)
    with open(os.path.join(root, "test.jsonl"), "w") as f:
        f.write(
            json.dumps({"id": "s0", "image": "a.png", "sound": "a.wav", "text": "red bird"}) + "\n"
        )
    return root


def _write(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _bad_case(root, reason: str) -> bytes:
    """Writes the files of one bad row into root; returns its jsonl line."""
    row: dict = {"id": f"bad-{reason}", "image": "a.png"}
    p = lambda name: os.path.join(root, name)
    if reason == "corrupt_sound":
        _write(p("c.wav"), b"RIFF" + bytes(range(200)))
        row["sound"] = "c.wav"
    elif reason == "empty_sound":
        open(p("e.wav"), "wb").close()
        row["sound"] = "e.wav"
    elif reason == "zero_length_sound":
        soundfile.write(p("z.wav"), np.zeros(0), 8000)
        row["sound"] = "z.wav"
    elif reason == "silent_sound":
        _wav(p("s.wav"), silent=True)
        row["sound"] = "s.wav"
    elif reason == "garbage_image":
        _write(p("g.png"), b"\x89PNG nonsense")
        row["image"] = "g.png"
    elif reason == "truncated_image":
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(buffer, format="PNG")
        _write(p("t.png"), buffer.getvalue()[:60])
        row["image"] = "t.png"
    elif reason == "empty_caption":
        row["text"] = "  ... "
    elif reason == "all_words_unknown":
        row["text"] = "xylophone zeppelin"
    elif reason == "missing_file":
        row["sound"] = "nowhere.wav"
    elif reason == "unknown_keys":
        row["colour"] = "red"
    elif reason == "not_utf8":
        return b'{"id": "x", "text": "caf\xe9"}\n'
    return (json.dumps(row) + "\n").encode()


BAD_CASES = {
    "corrupt_sound": "unreadable_sound",
    "empty_sound": "unreadable_sound",
    "zero_length_sound": "unreadable_sound",
    "silent_sound": "silent_sound",
    "garbage_image": "unreadable_image",
    "truncated_image": "unreadable_image",
    "empty_caption": "empty_caption",
    "all_words_unknown": "all_words_unknown",
    "missing_file": "missing_file",
    "unknown_keys": "unknown_keys",
    "not_utf8": "bad_row",
}


def _manifest_builder(root, data_dir, strict=False):
    config = ManifestConfig(name="m", folder=str(root), spec=SPEC)
    return ManifestDataset(data_dir=str(data_dir), config=config, strict=strict)


def test_manifest_skips_and_counts_every_bad_row(tmp_path):
    root = _good_folder(tmp_path / "folder")
    with open(os.path.join(root, "test.jsonl"), "ab") as f:
        for case in BAD_CASES:
            f.write(_bad_case(root, case))
        f.write(_bad_case(root, "missing_file").replace(b"bad-missing_file", b"s0"))  # duplicate id
    builder = _manifest_builder(root, tmp_path / "data")
    builder.download_and_prepare()
    report = read_skip_report(builder.data_dir)
    expected: dict = {}
    for reason in BAD_CASES.values():
        expected[reason] = expected.get(reason, 0) + 1
    expected["missing_file"] += 1
    assert report["skipped"]["test"] == expected
    assert report["kept"] == {"train": 3, "test": 1}
    assert builder.info.splits["test"].num_examples == 1
    rows = {r["id"].decode(): r for r in builder.as_data_source("train")}
    assert (
        rows["t0"]["has_sound"] and not rows["t0"]["has_text"] and not rows["t0"]["text_mask"].any()
    )
    assert rows["t2"]["image"].shape == (16, 16, 3) and rows["t2"]["sound"].shape == (64, 65)
    assert features.load_label_names(builder.data_dir)["labels"] == ["bird", "dog"]
    assert {r["label"] for r in rows.values()} == {0, 1}


def test_manifest_fine_labels_and_held_out_validation(tmp_path):
    root = _good_folder(tmp_path / "folder")
    rows = [
        {"id": f"r{i}", "image": "a.png", "sound": "a.wav", "label": "dog",
         "fine_label": "terrier" if i % 2 else "poodle"}
        for i in range(40)
    ]  # fmt: skip
    with open(os.path.join(root, "train.jsonl"), "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    config = ManifestConfig(name="m", folder=root, spec=SPEC, validation_fraction=0.25)
    builder = ManifestDataset(data_dir=str(tmp_path / "data"), config=config)
    builder.download_and_prepare()
    names = features.load_label_names(builder.data_dir)
    assert names == {"labels": ["bird", "dog"], "fine_labels": ["poodle", "terrier"]}
    splits = {
        s: {r["id"].decode(): r for r in builder.as_data_source(s)} for s in ("train", "validation")
    }
    assert set(splits["train"]).isdisjoint(splits["validation"])
    assert len(splits["train"]) + len(splits["validation"]) == 43
    assert 3 <= len(splits["validation"]) <= 20  # a hash-picked quarter of 43 rows
    t0 = splits["train"].get("t0", splits["validation"].get("t0"))
    assert t0["fine_label"] == -1  # a row without one
    fine = {r["fine_label"] for split in splits.values() for i, r in split.items() if i[0] == "r"}
    assert fine == {0, 1}
    # The held-out rows depend on the ids only, not on their order in the file.
    reordered = tmp_path / "reordered"
    shutil.copytree(root, reordered)
    lines = (tmp_path / "folder" / "train.jsonl").read_text().splitlines(keepends=True)
    (reordered / "train.jsonl").write_text("".join(lines[::-1]))
    config = ManifestConfig(name="m", folder=str(reordered), spec=SPEC, validation_fraction=0.25)
    again = ManifestDataset(data_dir=str(tmp_path / "data2"), config=config)
    again.download_and_prepare()
    held = {r["id"].decode() for r in again.as_data_source("validation")}
    assert held == set(splits["validation"])


def test_manifest_reports_cropped_and_padded_sounds(tmp_path):
    root = _good_folder(tmp_path / "folder")
    _wav(os.path.join(root, "long.wav"), seconds=1.5)
    with open(os.path.join(root, "train.jsonl"), "a") as f:
        f.write(json.dumps({"id": "long", "image": "a.png", "sound": "long.wav"}) + "\n")
    builder = _manifest_builder(root, tmp_path / "data")
    builder.download_and_prepare()  # SPEC clips are 1 s: a.wav (0.5 s) is padded, long.wav cropped
    sounds = read_skip_report(builder.data_dir)["sounds"]
    assert sounds["train"]["cropped"] == 1 and sounds["train"]["padded"] == 2
    assert sounds["train"]["seconds_cut"] == pytest.approx(0.5)
    assert sounds["train"]["seconds_added"] == pytest.approx(1.0)
    assert sounds["test"] == {
        "stored": 1,
        "cropped": 0,
        "seconds_cut": 0.0,
        "padded": 1,
        "seconds_added": 0.5,
    }


def test_a_split_with_many_sounds_cut_names_the_clip_that_keeps_them(tmp_path, caplog):
    spec = audio.AudioConfig(sample_rate=1000, hop_length=10, clip_seconds=1.0, time_steps=101)
    report = SkipReport(audio=spec)
    # Two sounds cut by 1.2 s and 0.8 s (1 s on average), one whole, one row without sound.
    for position, delta in enumerate((1200, 800, 0, None)):
        report.add("train", Outcome(position, clip_delta=delta))
    report.add("test", Outcome(0, clip_delta=300))
    report.add("test", Outcome(1, clip_delta=0))
    report.add("test", Outcome(2, clip_delta=0))
    report.add("test", Outcome(3, clip_delta=0))
    with caplog.at_level(logging.INFO, logger="absl"):
        report.finish_split("train", str(tmp_path))
        report.finish_split("test", str(tmp_path))
    hints = [r.getMessage() for r in caplog.records if "on every command" in r.getMessage()]
    # 2 of 3 sounds cut in train; 1 of 4 in test is not many.
    assert hints == [
        "[train] 2 sounds lost part of their length: to keep more of each, pass "
        "--config.data.audio.clip_seconds=2 --config.data.audio.time_steps=201 on every command"
    ]
    assert read_skip_report(str(tmp_path))["sounds"]["train"]["stored"] == 3


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_strict_manifest_raises_at_the_first_bad_row(tmp_path, case):
    root = _good_folder(tmp_path / "folder")
    with open(os.path.join(root, "test.jsonl"), "ab") as f:
        f.write(_bad_case(root, case))
    with pytest.raises(BadInputError, match=BAD_CASES[case]) as err:
        _manifest_builder(root, tmp_path / "data", strict=True).download_and_prepare()
    assert "folder" in str(err.value) or "bad-" in str(err.value)  # names the file or row


def test_manifest_accepts_user_word_vectors_and_refuses_pickles(tmp_path):
    root = _good_folder(tmp_path / "folder")
    vectors = text.train_word_vectors(["a red dog barks", "a blue bird sings"], SPEC.text)
    text.save_word_vectors(vectors, tmp_path / "v.bin", binary=True)
    config = ManifestConfig(name="m", folder=root, spec=SPEC, word_vectors=str(tmp_path / "v.bin"))
    builder = ManifestDataset(data_dir=str(tmp_path / "data"), config=config)
    builder.download_and_prepare()
    assert builder.info.splits["train"].num_examples == 3
    vectors.save(str(tmp_path / "v.kv"))
    config = ManifestConfig(name="p", folder=root, spec=SPEC, word_vectors=str(tmp_path / "v.kv"))
    with pytest.raises(ValueError, match="pickle"):
        ManifestDataset(data_dir=str(tmp_path / "data2"), config=config).download_and_prepare()


def test_world_manifest_round_trip(tmp_path):
    world = World(TINY_WORLD)
    world.write_manifest(tmp_path / "m", limit=6)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(world.background_corpus(2000)))
    config = ManifestConfig(
        name="m", folder=str(tmp_path / "m"), spec=SPEC, background_corpus=str(corpus)
    )
    builder = ManifestDataset(data_dir=str(tmp_path / "data"), config=config)
    builder.download_and_prepare()  # the background corpus covers the words of six captions
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
        "train": 6, "validation": 6, "test": 6}  # fmt: skip


# ---------------------------------------------------------------- teacher probabilities added later


def test_teacher_probs_are_saved_in_row_order_and_validated(world_dir, tmp_path):
    probs = np.array([[0.25, 0.75], [1.0, 0.0]], np.float32)
    teacher_probs.save_teacher_probs(str(tmp_path), "train", probs)
    table = teacher_probs.load_teacher_probs(str(tmp_path), "train")
    assert np.array_equal(table[[1, 0]], probs[::-1])
    with pytest.raises(ValueError, match="sum to 1"):
        teacher_probs.save_teacher_probs(str(tmp_path), "train", probs * 2)
    # The refused write left the earlier file as it was.
    assert np.array_equal(teacher_probs.load_teacher_probs(str(tmp_path), "train"), probs)
    assert teacher_probs.load_teacher_probs(str(tmp_path), "test") is None


# ---------------------------------------------------------------- video folders and COCO


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_video_folder_gives_pairs_with_subfolder_labels(tmp_path):
    from tests.test_video import make_video

    for label in ("bells", "dogs"):
        os.makedirs(tmp_path / "videos" / label)
        make_video(tmp_path / "videos" / label / "clip.mp4", seconds=1.0)
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"junk")
    config = VideoFolderConfig(name="v", folder=str(tmp_path / "videos"), spec=SPEC,
                               frames_per_video=2, test_fraction=0.0)  # fmt: skip
    builder = VideoFolderDataset(data_dir=str(tmp_path / "data"), config=config)
    builder.download_and_prepare()
    rows = list(builder.as_data_source("train"))
    assert len(rows) == 4 and all(
        r["has_image"] and r["has_sound"] and not r["has_text"] for r in rows
    )
    assert sorted(r["label"] for r in rows) == [0, 0, 1, 1]
    assert read_skip_report(builder.data_dir)["skipped"]["train"] == {"unreadable_sound": 1}


def test_coco_adapter_reads_a_local_copy(tmp_path):
    helpers.write_fake_coco(tmp_path / "coco")
    config = CocoConfig(name="c", folder=str(tmp_path / "coco"), spec=SPEC)
    builder = CocoCaptionsFolder(data_dir=str(tmp_path / "data"), config=config)
    builder.download_and_prepare()
    assert builder.info.splits["train"].num_examples == 6  # every caption
    test = list(builder.as_data_source("test"))
    assert len(test) == 2 and all(r["caption"].decode().startswith("A dog") for r in test)


def test_coco_missing_is_one_clear_line(tmp_path):
    config = CocoConfig(name="c", folder=str(tmp_path / "absent"), spec=SPEC)
    with pytest.raises(FileNotFoundError, match="COCO captions not found") as err:
        CocoCaptionsFolder(data_dir=str(tmp_path / "data"), config=config).download_and_prepare()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("test_rows", ["", '{"id": "x", "image": "missing.png"}\n'])
def test_a_split_with_nothing_to_store_is_one_line(tmp_path, test_rows):
    root = _good_folder(tmp_path / "folder")
    (tmp_path / "folder" / "test.jsonl").write_text(test_rows)
    expected = "the test split has no row to store: all 1 were skipped (missing_file=1"
    if not test_rows:  # found before any row is encoded (a Beam build would start a pipeline)
        expected = f"{tmp_path / 'folder' / 'test.jsonl'} lists no rows"
    with pytest.raises(EmptySplitError, match=re.escape(expected)):
        _manifest_builder(root, tmp_path / "data").download_and_prepare()


def test_a_held_out_fraction_that_holds_no_row_gives_no_validation_split(tmp_path):
    root = _good_folder(tmp_path / "folder")  # 3 train rows: none hashes into a 10% hold-out
    config = ManifestConfig(name="m", folder=root, spec=SPEC, validation_fraction=0.1)
    builder = ManifestDataset(data_dir=str(tmp_path / "data"), config=config)
    builder.download_and_prepare()
    assert set(builder.info.splits) == {"train", "test"}
    assert len(builder.as_data_source("train")) == 3
