"""Bad input during a build: skip and count it (default), or stop at the first one (strict).

At the end of each split the counts per reason are printed and written to `skipped.json` beside the data
set, so a build that silently lost half its rows cannot go unnoticed.
"""

from __future__ import annotations

import collections
import json
import os

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
        # Per split: [cropped count, seconds cut, padded count, seconds added] of the stored sounds.
        self.clips: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0, 0.0])

    def skip(self, split: str, error: RowError) -> None:
        if self.strict:
            raise BadInputError(str(error)) from error
        self.skipped[split][error.reason] += 1
        if len(self.examples[error.reason]) < _EXAMPLES_PER_REASON:
            self.examples[error.reason].append(str(error))

    def clip(self, split: str, source_seconds: float, clip_seconds: float) -> None:
        """Records that a sound of source_seconds was cropped or padded to clip_seconds."""
        counts = self.clips[split]
        delta = source_seconds - clip_seconds
        if delta > 0:
            counts[0] += 1
            counts[1] += delta
        elif delta < 0:
            counts[2] += 1
            counts[3] -= delta

    def keep(self, split: str) -> None:
        self.kept[split] += 1

    def as_dict(self) -> dict:
        return {
            "kept": dict(self.kept),
            "skipped": {split: dict(c) for split, c in self.skipped.items()},
            "total_skipped": sum(sum(c.values()) for c in self.skipped.values()),
            "examples": dict(self.examples),
            "sounds": {
                split: {
                    "cropped": int(c[0]),
                    "seconds_cut": c[1],
                    "padded": int(c[2]),
                    "seconds_added": c[3],
                }  # fmt: skip
                for split, c in self.clips.items()
            },
        }

    def finish_split(self, split: str, folder: str) -> None:
        """Prints this split's counts and rewrites the JSON report in `folder`."""
        counts = dict(self.skipped.get(split, {}))
        detail = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
        print(f"[{split}] kept {self.kept[split]} rows; skipped {sum(counts.values())} ({detail})")
        if split in self.clips:
            cropped, cut, padded, added = self.clips[split]
            print(
                f"[{split}] sounds: {int(cropped)} cropped to the clip length (by "
                f"{cut / max(cropped, 1):.2f} s on average), {int(padded)} zero-padded (by "
                f"{added / max(padded, 1):.2f} s on average)"
            )
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, SKIP_REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(self.as_dict(), f, indent=2, sort_keys=True)


def read_skip_report(dataset_dir: str) -> dict:
    """The report written beside a built data set: {"kept", "skipped", "total_skipped", "examples"}."""
    with open(os.path.join(dataset_dir, SKIP_REPORT_FILE), encoding="utf-8") as f:
        return json.load(f)
