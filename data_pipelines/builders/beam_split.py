"""A split encoded by Apache Beam workers, with the rows, order and counts of the one-process build.

Workers run the builder's row encoder over the split's rows; of the examples that share an id the one at
the lowest position is kept and the others are duplicate_id rows, as in one process; examples are keyed
by id, which TFDS's Beam writer stores in the order of the same hash of (split, id) as its one-process
writer. The kept and skipped rows of the split sum to a SplitTally that the pipeline writes to a file
for the builder to report once the pipeline has finished. strict: the first bad row a worker meets
fails the pipeline with a BadInputError."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from data_pipelines.builders.base import RowEncoder
from data_pipelines.builders.skips import (
    BadInputError,
    Outcome,
    RowError,
    SplitTally,
    raise_if_strict,
)


def pipeline_options(options: str) -> PipelineOptions:
    """Comma-separated Beam options without their dashes ("runner=DirectRunner,direct_num_workers=2")
    -> PipelineOptions."""
    return PipelineOptions(
        [f"--{option.strip()}" for option in options.split(",") if option.strip()]
    )


def runner(options: str) -> str:
    """The runner the comma-separated Beam options name (DirectRunner when they name none)."""
    return pipeline_options(options).view_as(StandardOptions).runner or "DirectRunner"


class EncodeSplit(beam.PTransform):
    """pipeline -> (id, example) of the split's stored rows; writes the split's SplitTally to tally_file
    as a side effect."""

    def __init__(self, rows: Sequence[Any], encode_row: RowEncoder, strict: bool, tally_file: str):
        super().__init__()
        self.rows, self.encode_row = list(rows), encode_row
        self.strict, self.tally_file = strict, tally_file

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        # Create spreads the rows over the workers (it reshuffles them).
        outcomes = (
            pipeline
            | "Rows" >> beam.Create(list(enumerate(self.rows)))
            | "Encode" >> beam.FlatMapTuple(self.encode_row)
        )
        encoded = outcomes | "Encoded" >> beam.Filter(lambda o: o.example is not None)
        duplicates = (
            encoded
            | "Ids" >> beam.Map(lambda o: (o.example["id"], o.position))
            | "GroupIds" >> beam.GroupByKey()
            | "Later" >> beam.FlatMapTuple(_later_positions)
        )
        duplicate_positions = beam.pvalue.AsDict(
            duplicates | "DuplicatePositions" >> beam.Map(lambda o: (o.position, None))
        )
        stored = encoded | "Unique" >> beam.Filter(
            lambda o, duplicate: o.position not in duplicate, duplicate_positions
        )
        counted = (
            outcomes | "Errors" >> beam.Filter(lambda o: o.error is not None),
            duplicates,
            stored | "Drop" >> beam.Map(lambda o: Outcome(o.position, clip_delta=o.clip_delta)),
        )
        _ = (
            counted
            | "Flatten" >> beam.Flatten()
            | "Strict" >> beam.Map(_stop_if_strict, self.strict)
            | "Tally" >> beam.CombineGlobally(TallyFn())
            | "Write" >> beam.Map(_write_tally, self.tally_file)
        )
        return stored | "Key" >> beam.Map(lambda o: (o.example["id"], o.example))


def _later_positions(example_id: str, positions: Iterable[int]) -> Iterator[Outcome]:
    """The rows of one id but the first: duplicate_id rows."""
    for position in sorted(positions)[1:]:
        error = RowError("duplicate_id", example_id, "the id appears twice in the split")
        yield Outcome(position, error=error)


def _stop_if_strict(outcome: Outcome, strict: bool) -> Outcome:
    if outcome.error is not None:
        raise_if_strict(outcome.error, strict)
    return outcome


class TallyFn(beam.CombineFn):
    """Outcomes (examples dropped) -> their SplitTally, summed over the workers."""

    def create_accumulator(self) -> SplitTally:
        return SplitTally()

    def add_input(self, tally: SplitTally, outcome: Outcome) -> SplitTally:
        return tally.add(outcome)

    def merge_accumulators(self, tallies: Iterable[SplitTally]) -> SplitTally:
        merged = SplitTally()
        for tally in tallies:
            merged.merge(tally)
        return merged

    def extract_output(self, tally: SplitTally) -> SplitTally:
        return tally


def _write_tally(tally: SplitTally, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(tally.to_json())


def pop_tally(path: str) -> SplitTally:
    """The SplitTally a finished pipeline wrote to `path`; the file is removed."""
    with open(path, encoding="utf-8") as f:
        tally = SplitTally.from_json(f.read())
    os.remove(path)
    return tally


def worker_bad_input(error: BaseException) -> BadInputError | None:
    """The BadInputError a worker raised, from the pipeline's failure: in-process runners re-raise it
    with the step's name appended (the original is chained); others report the worker's traceback as
    text. None when the failure was something else."""
    found, chain = None, []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        if isinstance(seen, BadInputError):
            found = seen
        seen = seen.__cause__ or seen.__context__
    if found is not None:
        return BadInputError(str(found))
    match = re.search(r"BadInputError: (.+)", str(error))
    return BadInputError(match.group(1).strip()) if match else None
