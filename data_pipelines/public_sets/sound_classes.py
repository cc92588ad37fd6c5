"""Sound classification sets, read in the layout they are distributed in: ESC-50 and UrbanSound8K.

ESC-50 (github.com/karolpiczak/ESC-50, the repository's zip unpacks to ESC-50-master/):
    audio/{fold}-{src_file}-{take}-{target}.wav   2,000 clips of 5 s, 44.1 kHz mono
    meta/esc50.csv    filename,fold,target,category,esc10,src_file,take   (folds 1-5, targets 0-49)
UrbanSound8K (urbansounddataset.weebly.com, the tar unpacks to UrbanSound8K/):
    audio/fold1/ .. audio/fold10/{slice_file_name}   8,732 clips of up to 4 s
    metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class

`folder` is the folder holding audio/ and the metadata folder, or the folder the archive unpacked into
(one level above). Rows whose file is missing are counted ("missing_file") and left out, but still name
their class; rows with a bad field, a duplicate file name, or a class name that contradicts an earlier
row's are counted ("bad_row", "duplicate") and left out. Class names are indexed by target.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from data_pipelines.public_sets.common import (
    ClassificationSet,
    Clip,
    Skipped,
    class_names_by_target,
    find_root,
    parse_int,
    read_csv,
    require_items,
)

ESC50_CSV = "meta/esc50.csv"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
URBANSOUND8K_CSV = "metadata/UrbanSound8K.csv"
URBANSOUND8K_COLUMNS = (
    "slice_file_name",
    "fsID",
    "start",
    "end",
    "salience",
    "fold",
    "classID",
    "class",
)


def _read_clips(
    set_name: str,
    root: str,
    csv_name: str,
    columns: tuple[str, ...],
    keys: tuple[str, str, str, str],  # the file, fold, target and class columns
    audio_path: Callable[[str, int], str],  # (file name, fold) -> path relative to root
) -> ClassificationSet:
    if not os.path.isdir(os.path.join(root, "audio")):
        raise FileNotFoundError(f"{set_name}: no audio/ folder in {root}")
    file_key, fold_key, target_key, class_key = keys
    skipped = Skipped()
    names: dict[int, str] = {}
    clips: list[Clip] = []
    seen: set[str] = set()
    for line, row in read_csv(os.path.join(root, csv_name), columns, set_name):
        where = f"{csv_name}:{line}"
        if row is None:
            skipped.add("bad_row", f"{where}: the field count differs from the header's")
            continue
        file_name, category = row[file_key].strip(), row[class_key].strip()
        fold, target = parse_int(row[fold_key]), parse_int(row[target_key])
        if not file_name or os.path.basename(file_name) != file_name or file_name in (".", ".."):
            skipped.add("bad_row", f"{where}: bad file name {row[file_key]!r}")
            continue
        if fold is None or fold < 1 or target is None or target < 0 or not category:
            skipped.add("bad_row", f"{where}: bad fold, target or class in {row}")
            continue
        if names.setdefault(target, category) != category:
            skipped.add(
                "bad_row", f"{where}: target {target} is {names[target]!r}, here {category!r}"
            )
            continue
        if file_name in seen:
            skipped.add("duplicate", f"{where}: {file_name} listed again")
            continue
        seen.add(file_name)
        path = os.path.join(root, audio_path(file_name, fold))
        if not os.path.isfile(path):
            skipped.add("missing_file", f"{where}: {path}")
            continue
        clips.append(Clip(path, fold, target, category))
    require_items(set_name, len(clips), skipped)
    return ClassificationSet(
        set_name, root, tuple(clips), class_names_by_target(names, set_name), skipped
    )


def load_esc50(folder: str | os.PathLike) -> ClassificationSet:
    """ESC-50 from its distributed layout (module docstring): clips in csv order, 50 class names."""
    root = find_root(folder, ESC50_CSV, "esc50")
    return _read_clips(
        "esc50",
        root,
        ESC50_CSV,
        ESC50_COLUMNS,
        ("filename", "fold", "target", "category"),
        lambda name, fold: os.path.join("audio", name),
    )


def load_urbansound8k(folder: str | os.PathLike) -> ClassificationSet:
    """UrbanSound8K from its distributed layout (module docstring): audio/fold{fold}/{slice_file_name}."""
    root = find_root(folder, URBANSOUND8K_CSV, "urbansound8k")
    return _read_clips(
        "urbansound8k",
        root,
        URBANSOUND8K_CSV,
        URBANSOUND8K_COLUMNS,
        ("slice_file_name", "fold", "classID", "class"),
        lambda name, fold: os.path.join("audio", f"fold{fold}", name),
    )
