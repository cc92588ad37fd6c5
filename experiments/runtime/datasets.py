"""From config.data to a built TFDS data set: build it once (offline), or open it with a clear error."""

from __future__ import annotations

import copy
import fractions
import hashlib
import json
import math
import numbers
import os
import tempfile
from typing import Any

import tensorflow_datasets as tfds
from absl import logging

from alignment import losses
from data_pipelines import array_tables, input_pipeline, paths
from data_pipelines.builders.base import STORAGE_FORMAT
from data_pipelines.builders.coco import CocoCaptionsFolder, CocoConfig
from data_pipelines.builders.features import FeatureSpec, load_label_names
from data_pipelines.builders.manifest import ManifestConfig, ManifestDataset
from data_pipelines.builders.video_folder import VideoFolderConfig, VideoFolderDataset
from data_pipelines.builders.world_dataset import WorldBuilderConfig, WorldDataset
from data_pipelines.world import WorldConfig

WORLD_SIZES = {"small": WorldConfig.small, "default": WorldConfig, "full": WorldConfig.full}
BUILDERS = ("world", "manifest", "video_folder", "coco")
IMAGENET_CLASSES = 1000
BEAM_DEFAULT = "runner=DirectRunner"  # the Beam options of config.data.beam without any given
NO_LABELS = (
    "the data set has no labels, so no teacher can be trained on it: import torchvision AlexNet "
    "weights (--config.teacher.source=torchvision --config.teacher.path=alexnet.pth), restore a "
    "teacher checkpoint (--config.teacher.source=checkpoint --config.teacher.path=DIR), or train "
    "without a teacher (--config.loss.objective=ranking --config.init_vision_from_teacher=False)"
)


def _config_name(data_cfg: Any, spec: FeatureSpec) -> str:
    """The builder config name: the size plus a digest of every stored shape, so that data sets built
    with different feature settings live side by side in one data_dir."""
    digest = hashlib.sha1(
        json.dumps(
            [data_cfg.source, repr(spec), _holdout(data_cfg), STORAGE_FORMAT]
            + ([spec.float_storage] if spec.float_storage != "float32" else []),
            sort_keys=True,
        ).encode()
    ).hexdigest()[:8]
    return f"{data_cfg.builder_config}-{digest}"


def _holdout(data_cfg: Any) -> float:
    """The manifest's held-out validation fraction (the world's digest stays what it was without it)."""
    return float(data_cfg.validation_fraction) if data_cfg.builder == "manifest" else 0.0


def make_builder(data_cfg: Any, beam: bool = False) -> tfds.core.DatasetBuilder:
    """The TFDS builder config.data describes (nothing is built or read); beam: its rows are to be
    encoded by an Apache Beam pipeline (manifest, video_folder and coco)."""
    spec = FeatureSpec.from_config(data_cfg)
    name = _config_name(data_cfg, spec)
    kind = data_cfg.builder
    if kind == "world":
        if beam:
            raise ValueError(
                "Beam prepares manifest, video_folder and coco folders; the world is generated in "
                "one process: build it without config.data.beam and --beam_pipeline_options"
            )
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
        paths.require_local(data_cfg.source, "config.data.source")
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
                validation_fraction=_holdout(data_cfg),
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
    return cls(data_dir=data_cfg.data_dir, config=config, strict=data_cfg.strict, beam=beam)


def build(data_cfg: Any, beam_options: str = "") -> tfds.core.DatasetBuilder:
    """Builds the data set into config.data.data_dir unless it is already there; returns the builder.

    beam_options: comma-separated Apache Beam pipeline options ("runner=DirectRunner,
    direct_num_workers=2"). Given, or with config.data.beam, the rows are encoded by a Beam pipeline on
    that runner (DirectRunner by default); the data set is the one a single process builds.
    A remote data_dir (gs://...) is built in a local temporary folder, then copied there."""
    beam = bool(beam_options) or data_cfg.beam
    builder = make_builder(data_cfg, beam=beam)
    if is_built(builder):
        if not all(
            array_tables.is_written(builder.data_dir, split) for split in builder.info.splits
        ):
            # Built before the array tables existed: add them (its rows stay as they are).
            logging.info("data: %s has no array tables: writing them", builder.data_dir)
            input_pipeline.write_row_index(builder)
        return builder
    if not paths.is_remote(data_cfg.data_dir):
        _build_here(builder, beam_options if beam else None)
        return builder
    runner = "DirectRunner"
    if beam:
        from data_pipelines.builders import beam_split

        runner = beam_split.runner(beam_options or BEAM_DEFAULT)
    if runner != "DirectRunner":
        raise ValueError(
            f"config.data.data_dir={data_cfg.data_dir}: the {runner} workers write ArrayRecord files with "
            "local file calls, so build into a filesystem they all mount (gcsfuse, NFS, Filestore) and "
            "train from that folder or from the bucket behind it"
        )
    with tempfile.TemporaryDirectory(prefix="shr-build-") as staging:
        staged_cfg = copy.deepcopy(data_cfg)
        staged_cfg.data_dir = staging
        staged = make_builder(staged_cfg, beam=beam)
        logging.info(
            "data: %s is remote: building in %s (a local folder), then copying it there",
            data_cfg.data_dir,
            staging,
        )
        _build_here(staged, beam_options if beam else None)
        _copy_built(staged.data_dir, builder.data_dir)
    return make_builder(data_cfg, beam=beam)


def _build_here(builder: tfds.core.DatasetBuilder, beam_options: str | None) -> None:
    """Builds `builder` into its (local) data_dir; Beam when beam_options is not None."""
    logging.info(
        "data: building %s/%s into %s%s",
        builder.name,
        builder.builder_config.name,
        builder.data_dir,
        f" with Apache Beam ({beam_options or BEAM_DEFAULT})" if beam_options is not None else "",
    )
    download_config = tfds.download.DownloadConfig(try_download_gcs=False)
    if beam_options is not None:
        # Beam takes seconds to import: only Beam builds load it.
        from data_pipelines.builders import beam_split

        download_config.beam_options = beam_split.pipeline_options(beam_options or BEAM_DEFAULT)
    builder.download_and_prepare(download_config=download_config)
    input_pipeline.write_row_index(builder)


def _copy_built(local: os.PathLike | str, remote: os.PathLike | str) -> None:
    """Copies a built data set's folder to its remote data_dir; dataset_info.json last, so the copy is
    seen as built (is_built) only once every file is there."""
    files = sorted(
        os.path.join(folder, name) for folder, _, names in os.walk(local) for name in names
    )
    files.sort(key=lambda f: os.path.basename(f) == "dataset_info.json")
    total = sum(os.path.getsize(f) for f in files)
    logging.info("data: copying %d files (%.1f MB) to %s", len(files), total / 1e6, remote)
    for source in files:
        paths.copy_file(source, paths.as_path(remote) / os.path.relpath(source, local))


def is_built(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether the data set is complete in its data_dir (a local folder or a URI)."""
    return (paths.as_path(builder.data_dir) / "dataset_info.json").is_file()


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


def class_counts(builder: tfds.core.DatasetBuilder) -> tuple[int, int]:
    """(number of fine classes, number of classes) of a built data set (label_names.json; 0 when absent)."""
    try:
        names = label_names(builder)
    except FileNotFoundError:
        return 0, 0
    return len(names.get("fine_labels", [])), len(names.get("labels", []))


def resolve_config(config: Any, builder: tfds.core.DatasetBuilder) -> Any:
    """A copy of `config` with the knobs that follow the data set filled in from the built data set.

    - model.num_classes / teacher.num_classes = 0: the teacher's classes (fine labels when the data set
      has them, else labels), so the students' logits match the teacher's distribution;
    - num_epochs > 0: total_steps = num_epochs * steps per epoch of the larger pair stream (and
      eval_every from eval_every_epochs, optimizer.warmup_steps from its warmup_epochs);
    - teacher.num_epochs > 0: teacher.total_steps likewise over the train images (and
      teacher.optimizer.warmup_steps from its warmup_epochs).
    Raises ValueError (one line) when classes are needed but the data set has no labels, or when the
    loss terms cannot work with each other or with the model (losses.check_config).
    """
    losses.check_config(config.loss, config.model)
    config = copy.deepcopy(config)
    fine, coarse = class_counts(builder)
    classes = IMAGENET_CLASSES if config.teacher.source == "torchvision" else fine or coarse
    if config.teacher.num_classes == 0 and not classes:
        if losses.needs_teacher_probs(config.loss):
            raise ValueError(NO_LABELS)
        classes = 1  # ranking never reads the logits; the head still needs a width
    if config.teacher.num_classes == 0:
        config.teacher.num_classes = classes
    if config.model.num_classes == 0:
        config.model.num_classes = config.teacher.num_classes
    if config.num_epochs > 0:
        sizes = input_pipeline.stream_sizes(builder, "train")
        # Whole steps per epoch, so that validation and warm-up fall on epoch boundaries.
        per_epoch = max(1, max(sizes.values()) // config.batch_size)
        config.total_steps = _in_steps(config.num_epochs, per_epoch, config.total_steps)
        config.eval_every = _in_steps(config.eval_every_epochs, per_epoch, config.eval_every)
        opt = config.optimizer
        opt.warmup_steps = _in_steps(opt.warmup_epochs, per_epoch, opt.warmup_steps)
    if config.teacher.num_epochs > 0:
        images = input_pipeline.count_rows(builder, "train", "has_image")
        per_epoch = fractions.Fraction(images, config.teacher.batch_size)
        teacher, opt = config.teacher, config.teacher.optimizer
        teacher.total_steps = _in_steps(teacher.num_epochs, per_epoch, teacher.total_steps)
        opt.warmup_steps = _in_steps(opt.warmup_epochs, per_epoch, opt.warmup_steps)
    return config


def _in_steps(epochs: int, steps_per_epoch: numbers.Rational, steps: int) -> int:
    """A length the config gives in epochs, in steps: `epochs` passes of steps_per_epoch (rounded down,
    at least one step) when epochs > 0; else `steps`, the length the config gives in steps."""
    return max(1, math.floor(epochs * steps_per_epoch)) if epochs > 0 else steps
