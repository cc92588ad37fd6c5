"""What every builder shares: a config carrying the feature spec, DatasetInfo, and skip-or-raise generation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines.builders.features import FeatureSpec
from data_pipelines.builders.skips import RowError, SkipReport

Example = dict[str, Any]
STORAGE_FORMAT = "array_record"


@dataclasses.dataclass(eq=False)
class SpecConfig(tfds.core.BuilderConfig):
    """A BuilderConfig whose `spec` fixes the stored shapes (image size, audio and text configs)."""

    spec: FeatureSpec = dataclasses.field(default_factory=FeatureSpec)


class AlignedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
    """Base of the builders. strict=False skips bad rows and reports them; strict=True raises at the first."""

    VERSION = tfds.core.Version("1.0.0")
    # Rows keep their generated order (deterministic); training shuffles per epoch in the pipeline.
    disable_shuffling = True
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    DESCRIPTION = ""

    def __init__(self, *, strict: bool = False, **kwargs: Any):
        self.report = SkipReport(strict=strict)
        # ArrayRecord: rows are read by index (data_pipelines.records), never a whole split at once.
        kwargs.setdefault("file_format", STORAGE_FORMAT)
        super().__init__(**kwargs)

    @property
    def spec(self) -> FeatureSpec:
        return self.builder_config.spec

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION,
            features=self.spec.features(),
            supervised_keys=None,
        )

    def _keep_valid(
        self, split: str, rows: Iterable[Callable[[], Example]]
    ) -> Iterator[tuple[str, Example]]:
        """Runs each row's encoder; bad rows are skipped (counted) or raise, duplicate ids are bad rows."""
        seen: set[str] = set()
        for make_example in rows:
            try:
                example = make_example()
                if example["id"] in seen:
                    raise RowError(
                        "duplicate_id", example["id"], "the id appears twice in the split"
                    )
            except RowError as err:
                self.report.skip(split, err)
                continue
            seen.add(example["id"])
            self.report.keep(split)
            yield example["id"], example
        self.report.finish_split(split, self.data_dir)
