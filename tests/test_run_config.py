"""Configs: shapes stated once, names resolved from the package, a run's saved config restored with
overrides on top; metrics.jsonl holds each step once after a resume."""

import json
import os

import pytest

from experiments import configs
from experiments.cli import launch
from experiments.configs import own_data, paper, tiny
from experiments.configs.base import base_config
from experiments.runtime import datasets, logs, run_config


@pytest.mark.parametrize("module", [tiny, paper, own_data])
def test_model_shapes_follow_the_data(module):
    config = module.get_config()
    assert config.model.vision.image_size == config.data.image_size
    assert config.model.sound.freq_bins == config.data.audio.n_fft // 2 + 1
    assert config.model.text.max_words == config.data.text.max_words
    assert config.model.text.word_dim == config.data.text.word_dim
    config.data.image_size = 33
    config.data.audio.n_fft = 64
    config.data.text.word_dim = 7
    assert config.model.vision.image_size == 33
    assert config.model.sound.freq_bins == 33
    assert config.model.text.word_dim == 7
    # The teacher and the tower's sound window may differ from the data by design.
    assert config.teacher.image_size != 33


def test_config_names_resolve_inside_the_package(tmp_path, monkeypatch):
    for name in configs.NAMES:
        path = configs.config_path(name)
        assert os.path.isfile(path) and path.endswith(f"experiments/configs/{name}.py")
    assert configs.config_path("my/own.py") == "my/own.py"
    monkeypatch.chdir(tmp_path)
    argv = ["prog", "--config=tiny", "--config", "world", "--config=x/tiny.py", "--workdir=w"]
    resolved = launch._resolve_config_names(argv)
    assert resolved[1] == "--config=" + configs.config_path("tiny")
    assert resolved[3] == configs.config_path("world")
    assert resolved[4:] == ["--config=x/tiny.py", "--workdir=w"]


def test_a_saved_config_comes_back_with_overrides_on_top(tmp_path):
    config = tiny.get_config()
    config.loss.objective = "ranking"
    config.loss.layers = ("fc6", "fc7")
    config.data.image_size = 30
    run_config.save(str(tmp_path), config, configs.config_path("tiny"))
    assert json.loads((tmp_path / "config.json").read_text())["config_file"] == "tiny"
    saved = run_config.load(str(tmp_path), {"total_steps": 7, "data.image_size": 28})
    assert saved.source == "tiny"
    restored = saved.config
    assert restored.loss.objective == "ranking" and restored.loss.layers == ("fc6", "fc7")
    assert restored.total_steps == 7
    # The references survive the round trip: the override moved the model's shape too.
    assert restored.data.image_size == restored.model.vision.image_size == 28
    assert restored.is_locked


def test_a_saved_config_without_its_file_uses_the_saved_values(tmp_path):
    config = tiny.get_config()
    run_config.save(str(tmp_path), config, None)
    restored = run_config.load(str(tmp_path), {"seed": 3}).config
    assert restored.seed == 3
    assert restored.model.fc_dims == config.model.fc_dims
    assert restored.data.audio.n_fft == config.data.audio.n_fft


@pytest.mark.parametrize("config_file", [configs.config_path("tiny"), None])
def test_a_config_saved_before_newer_keys_takes_their_defaults(tmp_path, config_file):
    """An older run's config.json lacks the keys added since; they come back with base.py's defaults,
    with or without the recorded file, and overrides reach them."""
    run_config.save(str(tmp_path), tiny.get_config(), config_file)
    path = tmp_path / "config.json"
    record = json.loads(path.read_text())
    del record["config"]["compilation_cache_dir"]
    del record["config"]["model"]["vision"]["features_scale"]
    del record["config"]["loss"]["words_weight"]
    del record["config"]["augment"]
    path.write_text(json.dumps(record))
    restored = run_config.load(str(tmp_path), {"loss.words_weight": 0.5}).config
    defaults = base_config()
    assert restored.compilation_cache_dir == defaults.compilation_cache_dir
    assert restored.model.vision.features_scale == defaults.model.vision.features_scale
    assert restored.augment.to_dict() == defaults.augment.to_dict()
    assert restored.loss.words_weight == 0.5
    assert restored.model.fc_dims == tiny.get_config().model.fc_dims  # saved values stay


def test_lengths_in_epochs_become_steps_of_the_data_set(monkeypatch):
    """Each length given in epochs (> 0) becomes steps of the built data set; 0 keeps the steps."""
    monkeypatch.setattr(
        datasets.input_pipeline,
        "stream_sizes",
        lambda builder, split: {"image_sound": 1000, "image_text": 650},
    )
    monkeypatch.setattr(datasets.input_pipeline, "count_rows", lambda builder, split, flag: 1000)
    monkeypatch.setattr(datasets, "class_counts", lambda builder: (48, 6))
    config = base_config()
    config.update(num_epochs=3, eval_every_epochs=1, batch_size=64, eval_every=7)
    config.optimizer.warmup_epochs = 2
    config.teacher.update(num_epochs=10, batch_size=128)
    config.teacher.optimizer.warmup_epochs = 1
    resolved = datasets.resolve_config(config, builder=None)
    # Students: whole steps of the larger stream per epoch (1000 // 64 = 15).
    assert (resolved.total_steps, resolved.eval_every, resolved.optimizer.warmup_steps) == (
        45,
        15,
        30,
    )
    # The teacher: passes over its 1000 images, rounded down once (10 * 1000 // 128, 1000 // 128).
    assert (resolved.teacher.total_steps, resolved.teacher.optimizer.warmup_steps) == (78, 7)
    config.update(eval_every_epochs=0, num_epochs=0)
    config.teacher.num_epochs = 0
    resolved = datasets.resolve_config(config, builder=None)
    assert (resolved.total_steps, resolved.eval_every) == (config.total_steps, 7)
    assert resolved.teacher.total_steps == config.teacher.total_steps


def test_metrics_after_the_resumed_step_are_dropped(tmp_path):
    writer = logs.ScalarWriter(str(tmp_path))
    for step in (5, 10, 15, 20):
        writer.write(step, {"loss": float(step)})
    writer.close()
    # A run killed after step 20 resumes from its step-10 checkpoint and logs 15 and 20 again.
    writer = logs.ScalarWriter(str(tmp_path), resumed_step=10)
    for step in (15, 20):
        writer.write(step, {"loss": float(step) + 0.5})
    writer.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert rows[2]["loss"] == 15.5


def test_the_config_is_written_as_hyperparameters_without_non_finite_values(tmp_path, caplog):
    config = base_config()
    assert config.teacher.optimizer.grad_clip == float("inf")
    writer = logs.ScalarWriter(str(tmp_path))
    with caplog.at_level("WARNING"):
        writer.write_config(config, metrics=("loss",))
    writer.close()
    assert not [r for r in caplog.records if "NaN or Inf" in r.getMessage()]
    assert logs._flatten({"a": {"clip": float("inf"), "lr": 0.5}}) == {"a.clip": "inf", "a.lr": 0.5}
