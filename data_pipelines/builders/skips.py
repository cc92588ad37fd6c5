"""What became of each input row: stored, or skipped and counted (default), or the build stops (strict).

At the end of each split the counts per reason are printed and written to `skipped.json` beside the data
set, so a build that silently lost half its rows cannot go unnoticed. The counts of a split form a
SplitTally, which merges: Beam workers each count a part of a split and the parts add up to what one
process counts.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import json
import math
from collections.abc import Callable
from typing import Any

from absl import logging

from data_pipelines import paths
from data_pipelines.audio import AudioConfig

SKIP_REPORT_FILE = "skipped.json"
# Reasons a row is skipped; the keys of the report.
REASONS = (
    "missing_file",
    "unreadable_image",
    "unreadable_sound",
    "silent_sound",
    "empty_caption",
    "all_words_unknown",
    "bad_row",
    "unknown_keys",
    "duplicate_id",
    "no_modality",
)
_EXAMPLES_PER_REASON = 5
# How the stored sounds were fitted to the clip length, in samples: integers add up to the same total
# in any order, so parallel workers count exactly what one process counts.
SOUND_KEYS = ("stored", "cropped", "samples_cut", "padded", "samples_added")
# Past this fraction of a split's sounds cut, the build names the longer clip that would keep them.
MANY_CUT = 0.25


class BadInputError(ValueError):
    """Raised in strict mode at the first bad row; the message names the file (or row) and the reason."""


class EmptySplitError(ValueError):
    """A split has no row to store: its manifest is empty, or every row of it was skipped."""


class RowError(ValueError):
    """One row cannot be used; `reason` is one of REASONS, `where` the file or row that is at fault."""

    def __init__(self, reason: str, where: str, detail: str):
        if reason not in REASONS:
            raise AssertionError(f"unknown skip reason {reason!r}")
        super().__init__(f"{where}: {reason}: {detail}")
        self.reason, self.where, self.detail = reason, where, detail

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # Worker processes (a pool, Beam) send errors back pickled; rebuild from the three parts.
        return RowError, (self.reason, self.where, self.detail)


def raise_if_strict(error: RowError, strict: bool) -> None:
    """strict: a bad row stops the build with a one-line BadInputError naming its file or row."""
    if strict:
        raise BadInputError(str(error)) from error


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one row became. position: its place in the split (the first of two rows with one id is kept,
    the first few bad rows are reported); example: the stored features, or error: why it was skipped;
    clip_delta: samples the stored sound lost to cropping (> 0) or gained from zero-padding (< 0); None
    for a row without sound."""

    position: int
    example: dict[str, Any] | None = None
    error: RowError | None = None
    clip_delta: int | None = None

    @classmethod
    def attempt(
        cls,
        position: int,
        encode: Callable[..., tuple[dict[str, Any], int | None]],
        *args: Any,
        **kwargs: Any,
    ) -> Outcome:
        """encode(*args, **kwargs) -> (example, clip_delta) as an Outcome; a RowError it raises too."""
        try:
            example, clip_delta = encode(*args, **kwargs)
        except RowError as err:
            return cls(position, error=err)
        return cls(position, example=example, clip_delta=clip_delta)


class SplitTally:
    """One split's counts: kept rows, skipped rows per reason with the messages of the first few (by
    position), and how many stored sounds were cropped or padded, by how many samples."""

    def __init__(self) -> None:
        self.kept = 0
        self.skipped: collections.Counter = collections.Counter()
        self.examples: dict[str, list[tuple[int, str]]] = {}
        self.sounds = dict.fromkeys(SOUND_KEYS, 0)

    def add(self, outcome: Outcome) -> SplitTally:
        """Counts one row (its example may already be dropped); returns self."""
        if outcome.error is not None:
            reason = outcome.error.reason
            self.skipped[reason] += 1
            self._keep_first(reason, [(outcome.position, str(outcome.error))])
            return self
        self.kept += 1
        if outcome.clip_delta is not None:
            self.sounds["stored"] += 1
        if outcome.clip_delta:
            kind, amount = (
                ("cropped", "samples_cut")
                if outcome.clip_delta > 0
                else ("padded", "samples_added")
            )
            self.sounds[kind] += 1
            self.sounds[amount] += abs(outcome.clip_delta)
        return self

    def merge(self, other: SplitTally) -> SplitTally:
        """Adds another part of the same split's counts; returns self."""
        self.kept += other.kept
        self.skipped.update(other.skipped)
        for reason, examples in other.examples.items():
            self._keep_first(reason, examples)
        for key in SOUND_KEYS:
            self.sounds[key] += other.sounds[key]
        return self

    def _keep_first(self, reason: str, examples: list[tuple[int, str]]) -> None:
        merged = self.examples.get(reason, []) + examples
        self.examples[reason] = heapq.nsmallest(_EXAMPLES_PER_REASON, merged)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kept": self.kept,
                "skipped": self.skipped,
                "examples": self.examples,
                "sounds": self.sounds,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SplitTally:
        data = json.loads(text)
        tally = cls()
        tally.kept, tally.sounds = data["kept"], data["sounds"]
        tally.skipped.update(data["skipped"])
        tally.examples = {r: [(p, m) for p, m in e] for r, e in data["examples"].items()}
        return tally


class SkipReport:
    """Counts kept and skipped rows per split; in strict mode the first bad row raises BadInputError.
    audio: how the stored sounds were made, to report their cropping and padding in seconds."""

    def __init__(self, strict: bool = False, audio: AudioConfig | None = None):
        self.strict = strict
        self.audio = audio or AudioConfig()
        self.splits: dict[str, SplitTally] = {}

    def add(self, split: str, outcome: Outcome) -> None:
        """Counts one row of `split` (raises BadInputError for a bad row in strict mode)."""
        if outcome.error is not None:
            raise_if_strict(outcome.error, self.strict)
        self.splits.setdefault(split, SplitTally()).add(outcome)

    def merge(self, split: str, tally: SplitTally) -> None:
        """Adds counts made elsewhere (Beam workers) to `split`'s."""
        self.splits.setdefault(split, SplitTally()).merge(tally)

    def as_dict(self) -> dict:
        """The report: kept and skipped rows per split, the first few messages per reason (over the
        splits in the order they were built) and, per split with any, the cropped and padded sounds."""
        examples: dict[str, list[str]] = collections.defaultdict(list)
        for tally in self.splits.values():
            for reason, found in tally.examples.items():
                examples[reason] += [message for _, message in found]
        rate = self.audio.sample_rate
        return {
            "kept": {split: t.kept for split, t in self.splits.items()},
            "skipped": {split: dict(t.skipped) for split, t in self.splits.items() if t.skipped},
            "total_skipped": sum(t.skipped.total() for t in self.splits.values()),
            "examples": {r: found[:_EXAMPLES_PER_REASON] for r, found in examples.items()},
            "sounds": {
                split: {
                    "stored": s["stored"],
                    "cropped": s["cropped"],
                    "seconds_cut": s["samples_cut"] / rate,
                    "padded": s["padded"],
                    "seconds_added": s["samples_added"] / rate,
                }
                for split, s in ((split, t.sounds) for split, t in self.splits.items())
                if s["cropped"] or s["padded"]
            },
        }

    def finish_split(self, split: str, folder: str) -> None:
        """Logs this split's counts and rewrites the JSON report in `folder`."""
        report = self.as_dict()
        counts = report["skipped"].get(split, {})
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
        logging.info(
            "[%s] kept %d rows; skipped %d (%s)",
            split,
            report["kept"].get(split, 0),
            sum(counts.values()),
            detail,
        )
        if split in report["sounds"]:
            s = report["sounds"][split]
            logging.info(
                "[%s] sounds: %d of %d cropped to the clip length (by %.2f s on average), %d "
                "zero-padded (by %.2f s on average)",
                split,
                s["cropped"],
                s["stored"],
                s["seconds_cut"] / max(s["cropped"], 1),
                s["padded"],
                s["seconds_added"] / max(s["padded"], 1),
            )
            if s["cropped"] > MANY_CUT * s["stored"]:
                logging.warning("[%s] %s", split, self.longer_clip(s["cropped"], s["seconds_cut"]))
        directory = paths.as_path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SKIP_REPORT_FILE).write_text(
            json.dumps(report, indent=2, sort_keys=True), encoding="utf-8"
        )

    def longer_clip(self, cropped: int, seconds_cut: float) -> str:
        """The flags of a clip longer by the mean cut, rounded up to half a second."""
        audio = self.audio
        seconds = math.ceil((audio.clip_seconds + seconds_cut / cropped) * 2) / 2
        return (
            f"{cropped} sounds lost part of their length: to keep more of each, pass "
            f"--config.data.audio.clip_seconds={seconds:g} "
            f"--config.data.audio.time_steps={audio.frames(seconds)} on every command"
        )


def read_skip_report(dataset_dir: str) -> dict:
    """The report written beside a built data set: {"kept", "skipped", "total_skipped", "examples",
    "sounds"}."""
    return json.loads((paths.as_path(dataset_dir) / SKIP_REPORT_FILE).read_text(encoding="utf-8"))
