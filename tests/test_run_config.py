"""Configs: shapes stated once, names resolved from the package, a run's saved config restored with
overrides on top; metrics.jsonl holds each step once after a resume."""

import json
import os

import pytest

from experiments import configs
from experiments.cli import launch
from experiments.configs import own_data, paper, tiny
from experiments.runtime import logs, run_config


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
