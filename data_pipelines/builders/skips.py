"""Bad input during a build: skip and count it (default), or stop at the first one (strict).

At the end of each split the counts per reason are printed and written to `skipped.json` beside the data
set, so a build that silently lost half its rows cannot go unnoticed.
"""

from __future__ import annotations

import collections
import json

from absl import logging

from data_pipelines import paths

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
CLIP_KEYS = ("cropped", "seconds_cut", "padded", "seconds_added")


class BadInputError(ValueError):
    """Raised in strict mode at the first bad row; the message names the file (or row) and the reason."""


class RowError(ValueError):
    """One row cannot be used; `reason` is one of REASONS, `where` the file or row that is at fault."""

    def __init__(self, reason: str, where: str, detail: str):
        if reason not in REASONS:
            raise AssertionError(f"unknown skip reason {reason!r}")
        super().__init__(f"{where}: {reason}: {detail}")
        self.reason, self.where, self.detail = reason, where, detail


class SkipReport:
    """Counts skipped rows per split and reason; in strict mode the first one raises BadInputError."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.skipped: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.kept: collections.Counter = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)
        # Per split: how many stored sounds were cropped or padded to the clip length, and by how much.
        self.clips: dict[str, dict[str, float]] = collections.defaultdict(
            lambda: dict.fromkeys(CLIP_KEYS, 0.0)
        )

    def skip(self, split: str, error: RowError) -> None:
        if self.strict:
            raise BadInputError(str(error)) from error
        self.skipped[split][error.reason] += 1
        if len(self.examples[error.reason]) < _EXAMPLES_PER_REASON:
            self.examples[error.reason].append(str(error))

    def clip(self, split: str, source_seconds: float, clip_seconds: float) -> None:
        """Records that a sound of source_seconds was cropped or padded to clip_seconds."""
        delta = source_seconds - clip_seconds
        if delta:
            kind, seconds = ("cropped", "seconds_cut") if delta > 0 else ("padded", "seconds_added")
            self.clips[split][kind] += 1
            self.clips[split][seconds] += abs(delta)

    def keep(self, split: str) -> None:
        self.kept[split] += 1

    def as_dict(self) -> dict:
        return {
            "kept": dict(self.kept),
            "skipped": {split: dict(c) for split, c in self.skipped.items()},
            "total_skipped": sum(sum(c.values()) for c in self.skipped.values()),
            "examples": dict(self.examples),
            "sounds": {
                split: {**c, "cropped": int(c["cropped"]), "padded": int(c["padded"])}
                for split, c in self.clips.items()
            },
        }

    def finish_split(self, split: str, folder: str) -> None:
        """Logs this split's counts and rewrites the JSON report in `folder`."""
        counts = dict(self.skipped.get(split, {}))
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
        logging.info(
            "[%s] kept %d rows; skipped %d (%s)",
            split,
            self.kept[split],
            sum(counts.values()),
            detail,
        )
        if split in self.clips:
            c = self.clips[split]
            logging.info(
                "[%s] sounds: %.0f cropped to the clip length (by %.2f s on average), %.0f "
                "zero-padded (by %.2f s on average)",
                split,
                c["cropped"],
                c["seconds_cut"] / max(c["cropped"], 1),
                c["padded"],
                c["seconds_added"] / max(c["padded"], 1),
            )
        directory = paths.as_path(folder)
        directory.mkdir(parents=True, exist_ok=True)
        report = json.dumps(self.as_dict(), indent=2, sort_keys=True)
        (directory / SKIP_REPORT_FILE).write_text(report, encoding="utf-8")


def read_skip_report(dataset_dir: str) -> dict:
    """The report written beside a built data set: {"kept", "skipped", "total_skipped", "examples"}."""
    return json.loads((paths.as_path(dataset_dir) / SKIP_REPORT_FILE).read_text(encoding="utf-8"))
