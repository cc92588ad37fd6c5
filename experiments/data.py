"""From config.data to a built TFDS data set: build it once (offline), or open it with a clear error."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines.builders.coco import CocoCaptionsFolder, CocoConfig
from data_pipelines.builders.features import FeatureSpec, load_label_names
from data_pipelines.builders.manifest import ManifestConfig, ManifestDataset
from data_pipelines.builders.video_folder import VideoFolderConfig, VideoFolderDataset
from data_pipelines.builders.world import WorldBuilderConfig, WorldDataset
from data_pipelines.world import WorldConfig

WORLD_SIZES = {"small": WorldConfig.small, "default": WorldConfig, "full": WorldConfig.full}
BUILDERS = ("world", "manifest", "video_folder", "coco")


def _config_name(data_cfg: Any, spec: FeatureSpec) -> str:
    """The builder config name: the size plus a digest of every stored shape, so that data sets built
    with different feature settings live side by side in one data_dir."""
    digest = hashlib.sha1(
        json.dumps([data_cfg.source, repr(spec)], sort_keys=True).encode()
    ).hexdigest()[:8]
    return f"{data_cfg.builder_config}-{digest}"


def make_builder(data_cfg: Any) -> tfds.core.DatasetBuilder:
    """The TFDS builder config.data describes (nothing is built or read)."""
    spec = FeatureSpec.from_config(data_cfg)
    name = _config_name(data_cfg, spec)
    kind = data_cfg.builder
    if kind == "world":
        if data_cfg.builder_config not in WORLD_SIZES:
            raise ValueError(
                f"config.data.builder_config={data_cfg.builder_config!r}: the world has sizes "
                f"{sorted(WORLD_SIZES)}"
            )
        config: Any = WorldBuilderConfig.make(
            name,
            WORLD_SIZES[data_cfg.builder_config](),
            spec=spec,
            background_sentences=data_cfg.text.background_sentences,
        )
        cls: Any = WorldDataset
    elif kind in ("manifest", "video_folder", "coco"):
        if not data_cfg.source or not os.path.isdir(data_cfg.source):
            raise FileNotFoundError(
                f"config.data.source={data_cfg.source!r} is not a folder: set "
                f"--config.data.source to your {kind} folder"
            )
        if kind == "manifest":
            config = ManifestConfig(
                name=name,
                spec=spec,
                folder=data_cfg.source,
                word_vectors=data_cfg.text.word2vec_path or None,
            )
            cls = ManifestDataset
        elif kind == "video_folder":
            config, cls = (
                VideoFolderConfig(name=name, spec=spec, folder=data_cfg.source),
                VideoFolderDataset,
            )
        else:
            config, cls = (
                CocoConfig(name=name, spec=spec, folder=data_cfg.source),
                CocoCaptionsFolder,
            )
    else:
        raise ValueError(f"config.data.builder={kind!r}: expected one of {BUILDERS}")
    return cls(data_dir=data_cfg.data_dir, config=config, strict=data_cfg.strict)


def build(data_cfg: Any) -> tfds.core.DatasetBuilder:
    """Builds the data set into config.data.data_dir unless it is already there; returns the builder."""
    builder = make_builder(data_cfg)
    if not is_built(builder):
        print(
            f"data: building {builder.name}/{builder.builder_config.name} into {builder.data_dir}"
        )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return builder


def is_built(builder: tfds.core.DatasetBuilder) -> bool:
    return os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json"))


def open_built(data_cfg: Any) -> tfds.core.DatasetBuilder:
    """The already-built data set config.data names, or a one-line FileNotFoundError saying how to build."""
    builder = make_builder(data_cfg)
    if not is_built(builder):
        raise FileNotFoundError(
            f"no built data set at {builder.data_dir}: build it with "
            "`python -m experiments.build_data --config=<the same config>` (or run make demo)"
        )
    return builder


def label_names(builder: tfds.core.DatasetBuilder) -> dict[str, list[str]]:
    return load_label_names(builder.data_dir)
