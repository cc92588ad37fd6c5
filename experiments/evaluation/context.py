"""The evaluation context: what every evaluator reads, each piece loaded or computed once per run.

A context holds the resolved config, the built data set and the mesh, and, on first use, each split's
per-row metadata (ids, labels, captions, which modalities a row has: read once per split), the student
restored from the workdir (or the parameters training hands it), its embeddings of each split at each
layer, and the teacher. Inputs (images, spectrograms, word vectors) are never held for a whole split:
embeddings are computed from batches read by row index (input_pipeline.eval_batches) as they are
embedded, and an evaluator that needs inputs reads the rows it names, in batches or as a small subset.
So memory grows with a split only by its embeddings and metadata. Several contexts over the same data set
(the demo's runs) share one SplitCache, so a split's metadata is read once for all of them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging

from alignment import parallel
from alignment.streams import MODALITIES
from data_pipelines import input_pipeline, records
from experiments.evaluation.rows import Row
from experiments.runtime import datasets, restore
from experiments.runtime.embedding import (
    embed_batches,
    embed_modality,
    eval_batch_size,
    modality_features,
)

# What evaluators know of every row of a split; the inputs are read by row index when needed.
METADATA = ("id", "label", "caption", "has_image", "has_sound", "has_text")


class SplitCache:
    """Each split's METADATA ("id" and "caption" decoded to str), read once; rows read by index."""

    def __init__(self, builder):
        self.builder = builder
        self._metadata: dict[str, dict[str, np.ndarray]] = {}
        # One reader per split: opening one reads its tables' index and modality flags.
        self._records: dict[str, records.Records] = {}

    def reader(self, split: str) -> records.Records:
        if split not in self._records:
            self._records[split] = records.Records(self.builder, split)
        return self._records[split]

    def has(self, split: str) -> bool:
        return split in self.builder.info.splits

    def get(self, split: str) -> dict[str, np.ndarray]:
        """{name: [N]} METADATA of every row of the split."""
        if split not in self._metadata:
            if not self.has(split):
                raise ValueError(f"the data set has no {split} split")
            arrays = self.reader(split).read_all(METADATA)
            for name in ("id", "caption"):
                arrays[name] = np.asarray([s.decode("utf-8") for s in arrays[name]], dtype=str)
            self._metadata[split] = arrays
        return self._metadata[split]

    def read(self, split: str, rows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """{name: [len(rows), ...]} stored features of the given rows of the split (a small subset)."""
        return self.reader(split).read(rows, names)

    def batches(
        self, split: str, rows: np.ndarray, names: Sequence[str]
    ) -> Iterator[dict[str, np.ndarray]]:
        """The features of the given rows, eval_batch_size() at a time, zero-padded with a bool "mask"
        (input_pipeline.eval_batches), each read when it is asked for."""
        return input_pipeline.eval_batches(
            self.builder, split, eval_batch_size(), features=names, rows=rows
        )


@dataclasses.dataclass
class Student:
    """A trained network: its module, parameters, step, where they came from, the jitted embed."""

    model: Any
    params: Any
    step: int
    checkpoint: str
    embed_fn: Any


class EvalContext:
    """What evaluators read (see the module docstring).

    Args:
      config: the run's config (resolved against the data set here).
      builder: the built data set.
      workdir: the run's workdir (where the student and the teacher are restored from), or None.
      out_dir: where evaluators write files (the unit grid); default <workdir>/eval.
      splits: a SplitCache to share with other contexts over the same data set.
      mesh: the device mesh (default: every device).
    """

    def __init__(
        self,
        config: Any,
        builder,
        workdir: str | None,
        out_dir: str | None = None,
        splits: SplitCache | None = None,
        mesh=None,
    ):
        self.config = datasets.resolve_config(config, builder)
        self.builder = builder
        self.workdir = workdir
        self.out_dir = out_dir or restore.subdir(workdir or ".", restore.EVAL_SUBDIR)
        self.splits = splits or SplitCache(builder)
        self.mesh = mesh or parallel.make_mesh()
        self._student: Student | None = None
        self._embeddings: dict[tuple[str, str, str], np.ndarray] = {}
        # Evaluator-private values computed once per run (e.g. validation's choice of rows).
        self.memo: dict[str, Any] = {}
        # The rows of the evaluators run before the current one (evaluation.suite.run keeps them), for
        # evaluators that compare methods.
        self.rows: list[Row] = []

    def split(self, name: str) -> dict[str, np.ndarray]:
        """{name: [N]} METADATA of every row of split `name`."""
        return self.splits.get(name)

    def has_split(self, name: str) -> bool:
        return self.splits.has(name)

    def read(self, split: str, rows: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored features of a few rows of a split (SplitCache.read)."""
        return self.splits.read(split, rows, names)

    def batches(
        self, split: str, rows: np.ndarray, names: Sequence[str]
    ) -> Iterator[dict[str, np.ndarray]]:
        """Stored features of rows of a split, a padded batch at a time (SplitCache.batches)."""
        return self.splits.batches(split, rows, names)

    @property
    def student(self) -> Student:
        """The student: restored from the workdir (restore.student_dir) on first use, or set by
        use_params."""
        if self._student is None:
            if jax.process_count() > 1:
                raise RuntimeError(
                    "evaluation embeds host-local arrays: run it as a single process"
                )
            model, state, _ = restore.restore_student(self.config, self.workdir, self.mesh)
            self._student = Student(
                model,
                state.params,
                int(jax.device_get(state.step)),
                restore.student_dir(self.config, self.workdir),
                parallel.make_embed_fn(model, self.mesh),
            )
            logging.info("evaluate: step %d from %s", self._student.step, self._student.checkpoint)
        return self._student

    def use_params(self, model: Any, params: Any, step: int, embed_fn: Any) -> None:
        """Evaluate these in-memory parameters (training's validation, with its jitted embed_fn)
        instead of a checkpoint."""
        self._student = Student(model, params, step, "in memory", embed_fn)
        self._embeddings.clear()

    def embed(
        self,
        arrays: dict[str, np.ndarray],
        modality: str,
        layers: Sequence[str],
        progress: str | None = None,
    ) -> dict[str, np.ndarray]:
        """{layer: [N, D]} of the student for every row of in-memory `arrays` (not cached)."""
        student = self.student
        return embed_modality(
            student.embed_fn,
            student.params,
            arrays,
            modality,
            list(layers),
            eval_batch_size(),
            progress,
        )

    def embed_rows(
        self,
        split: str,
        rows: np.ndarray,
        layers: Mapping[str, Sequence[str]],
        progress: str | None = None,
    ) -> dict[str, dict[str, np.ndarray]]:
        """{modality: {layer: [len(rows), D]}} of the student for the given rows of `split` at
        layers[modality], read and embedded a batch at a time, every modality in one pass (not
        cached)."""
        student = self.student
        return embed_batches(
            student.embed_fn,
            student.params,
            self.batches(split, rows, modality_features(layers)),
            layers,
            len(rows),
            progress,
        )

    def embeddings(
        self, split: str, layers: Sequence[str], modalities: Sequence[str] = MODALITIES
    ) -> dict[str, dict[str, np.ndarray]]:
        """{modality: {layer: [N, D]}} of every row of `split` (rows missing a modality embed zeros),
        computed once per split, modality and layer."""
        missing = {
            m: [layer for layer in layers if (split, m, layer) not in self._embeddings]
            for m in modalities
        }
        missing = {m: names for m, names in missing.items() if names}
        if missing:
            rows = np.arange(len(self.split(split)["id"]))
            embedded = self.embed_rows(split, rows, missing, progress=f"embed {split}")
            for m, by_layer in embedded.items():
                for layer, values in by_layer.items():
                    self._embeddings[(split, m, layer)] = values
        return {
            m: {layer: self._embeddings[(split, m, layer)] for layer in layers} for m in modalities
        }

    @functools.cached_property
    def label_names(self) -> list[str]:
        """Concept names indexed by label: label_names.json when stored, else "class <i>"."""
        try:
            names = list(datasets.label_names(self.builder)["labels"])
        except (FileNotFoundError, KeyError):
            names = []
        labels = self.split("test")["label"]
        count = max(len(names), int(labels.max()) + 1 if labels.size else 0)
        return names + [f"class {i}" for i in range(len(names), count)]


def triplet_rows(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the rows holding an image, a sound and a text."""
    return np.flatnonzero(arrays["has_image"] & arrays["has_sound"] & arrays["has_text"])


def labeled_rows(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{modality: indices of the rows holding it with a label}."""
    return {m: np.flatnonzero(arrays[f"has_{m}"] & (arrays["label"] >= 0)) for m in MODALITIES}
