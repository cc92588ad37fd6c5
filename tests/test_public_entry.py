"""Scoring a trained run on public set folders: sound classification from text prompts, and
caption retrieval of images (Karpathy layout) and sounds (Clotho layout), from small real folders."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from data_pipelines.builders.features import load_dataset_word_vectors
from experiments.evaluation.context import EvalContext
from experiments.runtime import datasets
from experiments.training import students
from experiments.workflows.public_eval import run_public_eval
from fixtures import digits
from fixtures.public_layouts import write_clotho_fixture, write_esc50_fixture
from tests import helpers


def _out(workdir: str) -> pathlib.Path:
    return pathlib.Path(workdir) / "public_eval"


@pytest.fixture(scope="module")
def run(tiny_world, tmp_path_factory):
    config = helpers.tiny_config(*tiny_world, total_steps=4, checkpoint_every=4, log_every=4)
    workdir = str(tmp_path_factory.mktemp("public_eval_run"))
    students.train(config, workdir)
    return config, workdir


def test_sound_classification_reports_accuracy_folds_and_lost_words(run, tmp_path):
    config, workdir = run
    folder = tmp_path / "esc50"
    write_esc50_fixture(folder, sources_per_class=2, takes_per_source=1, folds=2, clip_seconds=2.5)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a {}\nthe word {} spoken\n")
    markdown = run_public_eval(config, workdir, "esc50", str(folder), "max", str(prompts))
    result = json.loads((_out(workdir) / "esc50.json").read_text())
    assert (_out(workdir) / "esc50.md").read_text() == markdown
    assert result["num_clips"] == 20 and result["num_classes"] == 10
    assert result["templates"] == ["a {}", "the word {} spoken"] and result["pooling"] == "max"
    for method in ("zero_shot", "linear_probe"):
        scores = result[method]
        assert set(scores["per_fold"]) == {"1", "2"}
        assert 0.0 <= scores["accuracy"] <= 1.0
    # 2.5 s clips against the tiny world's 1 s: several windows per clip.
    assert result["windows"] > result["num_clips"]
    # The world's captions count in words ("two red dogs") but never say the other digit names: those
    # classes lose their only word, and the report says so.
    vocabulary = load_dataset_word_vectors(str(datasets.open_built(config.data).data_dir))
    lost = {name for name in digits.CLASSES if name not in vocabulary.key_to_index}
    assert {"one", "two", "three"}.isdisjoint(lost) and {"zero", "seven", "nine"} <= lost
    assert set(result["vocabulary"]["classes_without_known_words"]) == lost
    assert "Classes with no known word" in markdown


def _karpathy_folder(root, test_arrays, captions, count):
    """dataset_coco.json and val2014/ images in the Karpathy layout, from the world's test rows."""
    (root / "val2014").mkdir(parents=True)
    images = []
    for i in range(count):
        name = f"COCO_val2014_{i:012d}.jpg"
        Image.fromarray(test_arrays[i]).save(root / "val2014" / name, quality=95)
        sentences = [{"raw": captions[i], "tokens": captions[i].split()}] * 5
        images.append({"filepath": "val2014", "filename": name, "split": "test",
                       "sentences": sentences, "imgid": i})  # fmt: skip
    images.append({"filepath": "val2014", "filename": "gone.jpg", "split": "test",
                   "sentences": [{"raw": "a dog", "tokens": ["a", "dog"]}] * 5, "imgid": count})  # fmt: skip
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))


def test_image_caption_retrieval_in_the_karpathy_layout(run, tmp_path):
    config, workdir = run
    context = EvalContext(config, datasets.open_built(config.data), workdir)
    test = context.split("test")
    rows = np.flatnonzero(test["has_image"] & test["has_text"])[:24]
    images = context.read("test", rows, ["image"])["image"]
    _karpathy_folder(tmp_path, images, test["caption"][rows], len(rows))
    run_public_eval(config, workdir, "coco", str(tmp_path))
    result = json.loads((_out(workdir) / "coco.json").read_text())
    assert result["num_items"] == 24 and result["num_captions"] == 24 * 5
    assert result["skipped"]["counts"] == {"missing_file": 1}
    for direction, gallery in (("text->image", 24), ("image->text", 24 * 5)):
        metrics = result["retrieval"][direction]
        assert 1.0 <= metrics["median_rank"] <= gallery
        assert 0.0 <= metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"] <= 1.0
        assert 0.0 <= metrics["map@10"] <= 1.0


def test_sound_caption_retrieval_in_the_clotho_layout(run, tmp_path):
    config, workdir = run
    write_clotho_fixture(tmp_path, clips_per_class=1, clip_seconds=1.5)
    markdown = run_public_eval(config, workdir, "clotho", str(tmp_path))
    result = json.loads((_out(workdir) / "clotho.json").read_text())
    assert result["num_items"] == 10 and result["num_captions"] == 50
    assert set(result["retrieval"]) == {"text->sound", "sound->text"}
    assert "mAP@10" in markdown
    with pytest.raises(ValueError, match="--prompts is for classification"):
        run_public_eval(config, workdir, "clotho", str(tmp_path), prompts_file="x.txt")
