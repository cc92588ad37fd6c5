"""What every builder shares: a config carrying the feature spec, DatasetInfo, and the encoding of a
split's rows, in this process or as an Apache Beam pipeline, skipping (or raising at) bad rows."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import tensorflow_datasets as tfds

from data_pipelines.builders.features import FeatureSpec
from data_pipelines.builders.skips import EmptySplitError, Outcome, RowError, SkipReport

Example = dict[str, Any]
STORAGE_FORMAT = "array_record"
# (position of a row in its split, the row) -> what the row became: one outcome per example, at
# positions that sort in the rows' order (of two rows with one id, the first is kept). Builders pass a
# picklable one: Beam ships it to its workers.
RowEncoder = Callable[[int, Any], Iterable[Outcome]]


@dataclasses.dataclass(eq=False)
class SpecConfig(tfds.core.BuilderConfig):
    """A BuilderConfig whose `spec` fixes the stored shapes (image size, audio and text configs)."""

    spec: FeatureSpec = dataclasses.field(default_factory=FeatureSpec)


class AlignedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]
    """Base of the builders. strict=False skips bad rows and reports them; strict=True raises at the first.
    beam=True encodes the rows in an Apache Beam pipeline (download_and_prepare's
    DownloadConfig(beam_options=...) picks the runner); the data set is the same either way."""

    VERSION = tfds.core.Version("1.0.0")
    # Rows are keyed by id: TFDS stores a split in the order of a hash of (split, id), the same however
    # the rows were generated and whichever workers wrote them; training shuffles per epoch on top.
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    DESCRIPTION = ""

    def __init__(self, *, strict: bool = False, beam: bool = False, **kwargs: Any):
        # ArrayRecord: rows are read by index (data_pipelines.records), never a whole split at once.
        kwargs.setdefault("file_format", STORAGE_FORMAT)
        super().__init__(**kwargs)
        self.beam = beam
        self.report = SkipReport(strict=strict, audio=self.spec.audio)
        self._beam_splits: list[str] = []

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

    def _encode_split(self, split: str, rows: Sequence[Any], encode_row: RowEncoder) -> Any:
        """The split's (id, example) pairs for TFDS: a generator that encodes the rows here, or, with
        beam, the PTransform whose workers do."""
        if not self.beam:
            outcomes = (o for position, row in enumerate(rows) for o in encode_row(position, row))
            return self._keep_valid(split, outcomes)
        # Beam takes seconds to import: only Beam builds load it.
        from data_pipelines.builders import beam_split

        self._beam_splits.append(split)
        return beam_split.EncodeSplit(
            rows, encode_row, strict=self.report.strict, tally_file=self._tally_file(split)
        )

    def _keep_valid(self, split: str, outcomes: Iterable[Outcome]) -> Iterator[tuple[str, Example]]:
        """Counts each row's outcome and yields the stored ones; an id seen before is a bad row."""
        seen: set[str] = set()
        for outcome in outcomes:
            example = outcome.example
            if example is not None and example["id"] in seen:
                error = RowError("duplicate_id", example["id"], "the id appears twice in the split")
                outcome = Outcome(outcome.position, error=error)
            self.report.add(split, outcome)
            if outcome.example is not None:
                seen.add(outcome.example["id"])
                yield outcome.example["id"], outcome.example
        self.report.finish_split(split, self.data_dir)
        self._require_rows(split)

    def _require_rows(self, split: str) -> None:
        """One line instead of TFDS's "No examples were yielded" when a split stored nothing."""
        report = self.report.as_dict()
        if report["kept"].get(split, 0) == 0:
            skipped = report["skipped"].get(split, {})
            why = ", ".join(f"{reason}={n}" for reason, n in sorted(skipped.items()))
            reason = "it lists none"
            if skipped:
                example = report["examples"][min(skipped)][0]
                reason = f"all {sum(skipped.values())} were skipped ({why}; e.g. {example})"
            raise EmptySplitError(f"the {split} split has no row to store: {reason}")

    def _tally_file(self, split: str) -> str:
        return os.path.join(self.data_dir, f"skipped-{split}.partial.json")

    def _process_pipeline_result(self, pipeline_result: Any) -> None:
        """After a Beam build: each split's counts, as its workers summed them, into skipped.json."""
        del pipeline_result
        from data_pipelines.builders import beam_split

        for split in self._beam_splits:
            self.report.merge(split, beam_split.pop_tally(self._tally_file(split)))
            self.report.finish_split(split, self.data_dir)
            self._require_rows(split)

    def download_and_prepare(self, **kwargs: Any) -> None:
        """tfds' download_and_prepare; a strict Beam build stopped by a bad row raises the worker's
        one-line BadInputError, however the runner reported it."""
        try:
            super().download_and_prepare(**kwargs)
        except Exception as err:
            if not (self.beam and self.report.strict):
                raise
            from data_pipelines.builders import beam_split

            bad_input = beam_split.worker_bad_input(err)
            if bad_input is None:
                raise
            raise bad_input from err
