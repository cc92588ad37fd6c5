"""What the public-set loaders share: the skip report, the loaded-set dataclasses, csv and folder helpers.

A loader never raises on a bad row or a missing file: it counts it under a reason, keeps a few examples,
and goes on. It raises one-line errors only when the folder itself is wrong (FileNotFoundError: no such
folder, or the index file is not there; ValueError: the index file is unreadable or lacks its columns).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
from collections.abc import Iterator, Sequence

import numpy as np

# Examples kept per skip reason: enough to show what went wrong without flooding a report.
EXAMPLES_PER_REASON = 5


@dataclasses.dataclass
class Skipped:
    """Counts of what a loader left out, per reason ("missing_file", "bad_row", ...), with examples."""

    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def add(self, reason: str, detail: str) -> None:
        """Counts one left-out thing; `detail` names the row or file and says what is wrong."""
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(detail)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line: 'nothing skipped' or 'skipped 3 (bad_row=1, missing_file=2)'."""
        if not self.total:
            return "nothing skipped"
        detail = ", ".join(f"{reason}={n}" for reason, n in sorted(self.counts.items()))
        return f"skipped {self.total} ({detail})"

    def as_dict(self) -> dict:
        """JSON-ready {"total", "counts", "examples"}."""
        return {"total": self.total, "counts": dict(self.counts), "examples": dict(self.examples)}


@dataclasses.dataclass(frozen=True)
class Clip:
    """One labelled clip of a sound classification set; `path` is absolute."""

    path: str
    fold: int
    target: int
    category: str


@dataclasses.dataclass(frozen=True)
class ClassificationSet:
    """A sound classification set: clips whose file exists, class names indexed by target."""

    name: str
    root: str
    clips: tuple[Clip, ...]
    class_names: tuple[str, ...]  # class_names[target]
    skipped: Skipped

    @property
    def paths(self) -> list[str]:
        return [clip.path for clip in self.clips]

    @property
    def targets(self) -> np.ndarray:
        """int64 [N]."""
        return np.array([clip.target for clip in self.clips], dtype=np.int64)

    @property
    def folds(self) -> np.ndarray:
        """int64 [N]."""
        return np.array([clip.fold for clip in self.clips], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class CaptionSet:
    """A caption retrieval set: items (sounds or images) and their captions.

    items: absolute paths of the items whose file exists. item_ids: each item's id in the set (its
    file name, YouTube id or image file name). captions[j] describes items[caption_item[j]]; every item
    has at least one caption.
    """

    name: str
    root: str
    modality: str  # "sound" or "image"
    items: tuple[str, ...]
    item_ids: tuple[str, ...]
    captions: tuple[str, ...]
    caption_item: np.ndarray  # int64 [num_captions], index into items
    skipped: Skipped

    def item_captions(self) -> list[list[int]]:
        """For each item, the indices of its captions (in caption order)."""
        out: list[list[int]] = [[] for _ in self.items]
        for caption, item in enumerate(self.caption_item.tolist()):
            out[item].append(caption)
        return out


def require_items(set_name: str, kept: int, skipped: Skipped) -> None:
    """FileNotFoundError, one line, when nothing is usable: the folder, not a few rows, is wrong."""
    if kept:
        return
    first = next((shown[0] for shown in skipped.examples.values() if shown), "the index is empty")
    raise FileNotFoundError(f"{set_name}: nothing usable, {skipped.summary()}; first: {first}")


def caption_set(
    name: str,
    root: str,
    modality: str,
    entries: Sequence[tuple[str, str, Sequence[str]]],
    skipped: Skipped,
) -> CaptionSet:
    """Builds a CaptionSet from (item id, absolute path, captions) entries, in their order.

    FileNotFoundError when there is no entry (see require_items).
    """
    require_items(name, len(entries), skipped)
    captions: list[str] = []
    owners: list[int] = []
    for index, (_, _, texts) in enumerate(entries):
        captions.extend(texts)
        owners.extend([index] * len(texts))
    return CaptionSet(
        name=name,
        root=root,
        modality=modality,
        items=tuple(path for _, path, _ in entries),
        item_ids=tuple(item_id for item_id, _, _ in entries),
        captions=tuple(captions),
        caption_item=np.array(owners, dtype=np.int64),
        skipped=skipped,
    )


def find_root(folder: str | os.PathLike, marker: str, set_name: str) -> str:
    """The folder holding `marker` (a relative file path): `folder` itself or one folder below it.

    Archives often unpack into one extra folder (ESC-50-master/, UrbanSound8K/), so that level is
    searched too. FileNotFoundError, one line, when neither holds the marker.
    """
    folder = os.path.abspath(os.fspath(folder))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{set_name}: no such folder: {folder}")
    if os.path.isfile(os.path.join(folder, marker)):
        return folder
    below = sorted(
        entry.path
        for entry in os.scandir(folder)
        if entry.is_dir() and os.path.isfile(os.path.join(entry.path, marker))
    )
    if len(below) == 1:
        return below[0]
    where = f"{folder} or one folder below it" if not below else f"several folders: {below}"
    raise FileNotFoundError(f"{set_name}: expected {marker} in {where}")


def search_bases(folder: str | os.PathLike, root: str) -> list[str]:
    """Where media may lie: beside the index file (`root`) and, when that is a folder below, `folder`."""
    folder = os.path.abspath(os.fspath(folder))
    return [root] if root == folder else [root, folder]


def read_csv(
    path: str, columns: Sequence[str], set_name: str
) -> Iterator[tuple[int, dict[str, str] | None]]:
    """(line number, row) for each data row of a csv whose header holds `columns` (more are allowed).

    A row whose field count differs from the header's is yielded as None (the caller counts it as
    malformed). ValueError, one line, when the file is not UTF-8 text or its header lacks a column.
    """
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{set_name}: {path} is empty")
            header = [name.strip() for name in header]
            missing = [name for name in columns if name not in header]
            if missing:
                raise ValueError(
                    f"{set_name}: {path} lacks the columns {missing} (its header: {header})"
                )
            for row in reader:
                if not row or not any(field.strip() for field in row):
                    continue  # a blank line is not a row
                if len(row) != len(header):
                    yield reader.line_num, None
                    continue
                yield reader.line_num, dict(zip(header, row, strict=True))
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{set_name}: cannot read {path} as a UTF-8 csv ({err})") from err


def parse_int(value: str) -> int | None:
    """The integer a csv field holds ("3", " 3 ", "3.0"), or None."""
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def class_names_by_target(names: dict[int, str], set_name: str) -> tuple[str, ...]:
    """The class names ordered by target; ValueError when the targets are not 0..C-1."""
    if sorted(names) != list(range(len(names))):
        raise ValueError(
            f"{set_name}: class targets must be 0..C-1 with no gap, got {sorted(names)}"
        )
    return tuple(names[target] for target in range(len(names)))
