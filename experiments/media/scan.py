"""The items of a folder tree (or of a manifest file), streamed in a fixed order.

Images are found by extension (png jpg jpeg gif bmp webp), sounds too (wav flac ogg mp3); each non-empty
line of a .txt file is a sentence, and so is the `caption` (else `text`) field of each row of a .jsonl or
.csv file. A manifest file given as the source (a .jsonl in the own-data format: rows of "image",
"sound", "text" relative to its folder) yields each row's image, sound and sentence, the row's text as
the caption of all three. Files and folders are visited in sorted order, so the n-th item is the same
on every run over an unchanged tree (what resuming an index relies on); nothing is held but the current
file's lines.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Iterator

from data_pipelines.builders.manifest import read_manifest
from data_pipelines.builders.skips import RowError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
SOUND_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
TEXT_SUFFIXES = (".txt", ".jsonl", ".csv")
CAPTION_FIELDS = ("caption", "text")


@dataclasses.dataclass(frozen=True)
class Item:
    """One thing to embed, or a counted skip when `problem` is set.

    modality: "image", "sound" or "text". path: the file, relative to the source folder, with
    ":<line>" for a sentence of a text file. caption: the sentence itself, or a manifest row's text.
    problem: the reason an item cannot be embedded (e.g. "empty_text_file"), with `detail`.
    """

    modality: str
    path: str
    caption: str = ""
    problem: str | None = None
    detail: str = ""


def modality_of(path: str) -> str | None:
    """ "image", "sound" or "text" by the file's extension, else None."""
    suffix = os.path.splitext(path)[1].lower()
    for modality, suffixes in (
        ("image", IMAGE_SUFFIXES),
        ("sound", SOUND_SUFFIXES),
        ("text", TEXT_SUFFIXES),
    ):
        if suffix in suffixes:
            return modality
    return None


def iter_items(source: str) -> Iterator[Item]:
    """Every item of a folder tree or a manifest .jsonl file, in a fixed order (module docstring)."""
    if os.path.isfile(source) and source.endswith(".jsonl"):
        yield from _manifest_items(source)
        return
    if not os.path.isdir(source):
        raise FileNotFoundError(
            f"--source={source!r} is neither a folder nor a manifest .jsonl file"
        )
    for folder, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            relative = os.path.relpath(full, source)
            modality = modality_of(name)
            if modality in ("image", "sound"):
                yield Item(modality, relative)
            elif modality == "text":
                yield from _sentences(full, relative)


def _sentences(full: str, relative: str) -> Iterator[Item]:
    """The sentences of one text file, or one skip saying why it has none."""
    count = 0
    try:
        for number, sentence in _lines(full):
            count += 1
            yield Item("text", f"{relative}:{number}", sentence)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        yield Item("text", relative, problem="unreadable_text_file", detail=str(err))
        return
    if not count:
        yield Item("text", relative, problem="empty_text_file", detail="no sentence in the file")


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, sentence) of a .txt, .jsonl or .csv file."""
    with open(path, encoding="utf-8", newline="") as f:
        if path.lower().endswith(".csv"):
            for number, row in enumerate(csv.DictReader(f), start=2):
                sentence = _caption(row)
                if sentence:
                    yield number, sentence
            return
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            if path.lower().endswith(".jsonl"):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                line = _caption(row) if isinstance(row, dict) else ""
            if line:
                yield number, line


def _caption(row: dict) -> str:
    for field in CAPTION_FIELDS:
        value = row.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _manifest_items(path: str) -> Iterator[Item]:
    """Each manifest row's image, sound and sentence, paths relative to the manifest's folder."""
    for number, row in read_manifest(path):
        if isinstance(row, RowError):
            yield Item(
                "text", f"{os.path.basename(path)}:{number}", problem=row.reason, detail=row.detail
            )
            continue
        caption = str(row.get("text") or "")
        for modality in ("image", "sound"):
            if row.get(modality):
                yield Item(modality, str(row[modality]), caption)
        if caption.strip():
            yield Item("text", f"{os.path.basename(path)}:{number}", caption.strip())


def root_of(source: str) -> str:
    """The folder item paths are relative to: the source folder, or a manifest file's folder."""
    return source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
