"""Text-audio retrieval sets, read in the layout they are distributed in: Clotho and AudioCaps.

Clotho v2 (zenodo.org/record/4783391), the evaluation split by default:
    clotho_captions_evaluation.csv   file_name,caption_1,caption_2,caption_3,caption_4,caption_5
    evaluation/{file_name}           clotho_audio_evaluation.7z unpacks to this folder (1,045 clips)
`folder` holds both (or one folder below it does). Other splits: split="development" or "validation"
read clotho_captions_{split}.csv and {split}/ the same way.

AudioCaps (github.com/cdjkim/audiocaps) ships only csv files, test.csv by default:
    test.csv   audiocap_id,youtube_id,start_time,caption   (several rows per YouTube clip)
The audio must be fetched from YouTube by the user; a clip's file is expected as
    {youtube_id}.{wav,flac,ogg,mp3}  or, as AudioSet downloaders name them,  Y{youtube_id}.{ext}
in the first of these folders that has it: audio/{split}/, {split}/, audio/, and the folder itself,
looked up beside test.csv and in `folder` (the csv may sit in the repository's dataset/ folder). An
exact {youtube_id} name wins over a Y-prefixed one; .wav over .flac over .ogg over .mp3. Files are named
by YouTube id only, so all rows of one id share one audio item (the csv gives one start_time per id).

Skipped and counted: rows with a bad field ("bad_row"), file names (Clotho) or audiocap_ids (AudioCaps)
listed twice ("duplicate"), empty captions ("empty_caption"; the clip keeps its others), Clotho clips
with no caption left ("no_caption"), and the Clotho clips or AudioCaps rows whose audio file is missing
("missing_file": for AudioCaps, the number of caption rows that had no file).
"""

from __future__ import annotations

import os

from data_pipelines.audio import SOUND_SUFFIXES
from data_pipelines.public_sets.common import (
    CaptionSet,
    Skipped,
    caption_set,
    find_root,
    read_csv,
    search_bases,
)

CLOTHO_CAPTIONS = 5
CLOTHO_COLUMNS = ("file_name", *(f"caption_{i}" for i in range(1, CLOTHO_CAPTIONS + 1)))
AUDIOCAPS_COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


def load_clotho(folder: str | os.PathLike, split: str = "evaluation") -> CaptionSet:
    """Clotho's captions and clips (module docstring); items in csv order, 5 captions per clip."""
    csv_name = f"clotho_captions_{split}.csv"
    root = find_root(folder, csv_name, "clotho")
    audio = os.path.join(root, split)
    if not os.path.isdir(audio):
        raise FileNotFoundError(
            f"clotho: no {split}/ folder beside {csv_name} in {root} "
            f"(clotho_audio_{split}.7z unpacks to it)"
        )
    skipped = Skipped()
    entries: list[tuple[str, str, list[str]]] = []
    seen: set[str] = set()
    for line, row in read_csv(os.path.join(root, csv_name), CLOTHO_COLUMNS, "clotho"):
        where = f"{csv_name}:{line}"
        if row is None:
            skipped.add("bad_row", f"{where}: the field count differs from the header's")
            continue
        name = row["file_name"].strip()
        if not name or os.path.basename(name) != name or name in (".", ".."):
            skipped.add("bad_row", f"{where}: bad file name {row['file_name']!r}")
            continue
        if name in seen:
            skipped.add("duplicate", f"{where}: {name} listed again")
            continue
        seen.add(name)
        captions = []
        for key in CLOTHO_COLUMNS[1:]:
            if row[key].strip():
                captions.append(row[key].strip())
            else:
                skipped.add("empty_caption", f"{where}: {key} of {name} is empty")
        if not captions:
            skipped.add("no_caption", f"{where}: {name} has no caption")
            continue
        path = os.path.join(audio, name)
        if not os.path.isfile(path):
            skipped.add("missing_file", f"{where}: {path}")
            continue
        entries.append((name, path, captions))
    return caption_set("clotho", root, "sound", entries, skipped)


def _sound_files(folders: list[str]) -> dict[str, str]:
    """File stem -> path over the folders, the first folder and suffix (SOUND_SUFFIXES order) winning."""
    found: dict[str, str] = {}
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        names = sorted(os.listdir(folder))
        for suffix in SOUND_SUFFIXES:
            for name in names:
                stem, ext = os.path.splitext(name)
                if ext.lower() == suffix and os.path.isfile(os.path.join(folder, name)):
                    found.setdefault(stem, os.path.join(folder, name))
    return found


def audiocaps_folders(folder: str, root: str, split: str) -> list[str]:
    """The folders searched for AudioCaps audio, in order (module docstring)."""
    ordered = [
        os.path.join(base, sub)
        for sub in (os.path.join("audio", split), split, "audio", "")
        for base in search_bases(folder, root)
    ]
    return [os.path.normpath(path) for path in ordered]


def load_audiocaps(folder: str | os.PathLike, split: str = "test") -> CaptionSet:
    """AudioCaps captions and the clips found for them (module docstring); items in first-row order."""
    csv_name = f"{split}.csv"
    given = os.path.abspath(os.fspath(folder))
    root = find_root(given, csv_name, "audiocaps")
    searched = audiocaps_folders(given, root, split)
    files = _sound_files(searched)
    if not files:
        raise FileNotFoundError(
            f"audiocaps: no sound files named by YouTube id in any of {searched}"
        )
    skipped = Skipped()
    captions: dict[str, list[str]] = {}  # youtube id -> captions, in first-row order
    paths: dict[str, str] = {}
    seen_ids: set[str] = set()
    for line, row in read_csv(os.path.join(root, csv_name), AUDIOCAPS_COLUMNS, "audiocaps"):
        where = f"{csv_name}:{line}"
        if row is None:
            skipped.add("bad_row", f"{where}: the field count differs from the header's")
            continue
        caption_id, youtube_id = row["audiocap_id"].strip(), row["youtube_id"].strip()
        if not caption_id or not youtube_id:
            skipped.add("bad_row", f"{where}: no audiocap_id or youtube_id")
            continue
        if caption_id in seen_ids:
            skipped.add("duplicate", f"{where}: audiocap_id {caption_id} listed again")
            continue
        seen_ids.add(caption_id)
        if not row["caption"].strip():
            skipped.add("empty_caption", f"{where}: caption {caption_id} is empty")
            continue
        path = files.get(youtube_id) or files.get(f"Y{youtube_id}")
        if path is None:
            skipped.add("missing_file", f"{where}: no audio for YouTube id {youtube_id}")
            continue
        paths[youtube_id] = path
        captions.setdefault(youtube_id, []).append(row["caption"].strip())
    entries = [(youtube_id, paths[youtube_id], texts) for youtube_id, texts in captions.items()]
    return caption_set("audiocaps", root, "sound", entries, skipped)
