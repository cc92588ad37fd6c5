"""A run carries its config: <workdir>/config.json records the config file and every value, so evaluate,
retrieve and public_eval work from --workdir alone.

The saved values are applied on top of a fresh get_config() of the recorded file, so the shape references
between data and model (configs/base.py) survive; without the file (moved, another machine) the saved
values alone make the config. Either way, a key the run's config lacked (it was saved before the key
existed) takes its default from configs/base.py: the one place where older saved configs are upgraded,
so the code reads every key without a fallback of its own.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
from absl import logging
from etils import epath

from data_pipelines import paths
from experiments import configs
from experiments.configs.base import base_config

CONFIG_FILE = "config.json"


@dataclasses.dataclass(frozen=True)
class SavedConfig:
    config: ml_collections.ConfigDict
    source: str | None  # the recorded config file (a packaged config's name, or a path)


def _path(workdir: str) -> epath.Path:
    return paths.as_path(workdir) / CONFIG_FILE


def has_saved(workdir: str) -> bool:
    return _path(workdir).is_file()


def _source_name(config_file: str) -> str:
    """A packaged config's name ("world"), else the path as given."""
    path = os.path.abspath(config_file)
    name = os.path.basename(path).removesuffix(".py")
    if os.path.dirname(path) == configs.CONFIG_DIR and name in configs.NAMES:
        return name
    return config_file


def save(workdir: str, config: ml_collections.ConfigDict, config_file: str | None) -> None:
    """Writes <workdir>/config.json: {"config_file": name or path, "config": every value} (process 0)."""
    if jax.process_index() != 0:
        return
    paths.as_path(workdir).mkdir(parents=True, exist_ok=True)
    record = {
        "config_file": _source_name(config_file) if config_file else None,
        "config": json.loads(config.to_json_best_effort()),
    }
    _path(workdir).write_text(json.dumps(record, indent=1), encoding="utf-8")


def saved_source(workdir: str) -> str | None:
    return json.loads(_path(workdir).read_text(encoding="utf-8"))["config_file"]


def load(workdir: str, overrides: Mapping[str, Any] | None = None) -> SavedConfig:
    """The config saved in `workdir`, with `overrides` ({"a.b": value}) applied on top, locked."""
    record = json.loads(_path(workdir).read_text(encoding="utf-8"))
    source = record["config_file"]
    base = _load_file(configs.config_path(source)) if source else None
    if base is None:
        if source:
            logging.warning("config: %s is gone; using the values saved in %s", source, workdir)
        config = ml_collections.ConfigDict(_tuples(record["config"]))
    else:
        config = base
        config.unlock()
        _merge(config, record["config"], "")
    _fill_missing(config, base_config())
    config.update_from_flattened_dict(dict(overrides or {}))
    config.lock()
    return SavedConfig(config, source)


def _load_file(path: str) -> ml_collections.ConfigDict | None:
    if not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location("saved_run_config", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _merge(config: ml_collections.ConfigDict, saved: Mapping[str, Any], prefix: str) -> None:
    """Sets every saved value that differs from the file's; a derived field (a reference to another
    field) already follows the field it derives from."""
    for key, value in saved.items():
        if key not in config:
            logging.warning("config: the saved field %s%s no longer exists; ignored", prefix, key)
            continue
        current = config[key]
        if isinstance(current, ml_collections.ConfigDict) and isinstance(value, dict):
            _merge(current, value, f"{prefix}{key}.")
        elif _tuples(value) != current:
            config[key] = float(value) if isinstance(current, float) else _tuples(value)


def _fill_missing(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> None:
    """Adds, at every depth, each key of `defaults` that `config` lacks, with its default value."""
    for key in defaults:
        if key not in config:
            default = defaults[key]
            is_block = isinstance(default, ml_collections.ConfigDict)
            # A block's references (model shapes to data's) point into `defaults`: keep their values.
            config[key] = default.copy_and_resolve_references() if is_block else default
        elif all(isinstance(c[key], ml_collections.ConfigDict) for c in (config, defaults)):
            _fill_missing(config[key], defaults[key])
