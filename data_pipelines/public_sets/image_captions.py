"""Image-text retrieval sets on Karpathy's splits: COCO (5k test) and Flickr30k (1k test).

Karpathy's caption_datasets.zip holds dataset_coco.json and dataset_flickr30k.json:
    {"images": [{"filepath": "val2014" (COCO only), "filename": "...jpg",
                 "split": "train" | "val" | "test" | "restval",
                 "sentences": [{"raw": "A man ...", "tokens": ["a", "man", ...]}, ...]}, ...]}
`folder` holds the json (or one folder below it does). Images are looked up beside the json and in
`folder`, the first existing path winning:
    COCO:      {filepath}/{filename}, images/{filepath}/{filename}   (val2014/ and train2014/ unpacked)
    Flickr30k: flickr30k-images/{filename} (the official archive), flickr30k_images/{filename} and
               flickr30k_images/flickr30k_images/{filename} (the Kaggle copies), images/{filename},
               {filename}
The test split has 5,000 images (COCO) and 1,000 (Flickr30k). Each image keeps its first 5 sentences,
as is customary (a few COCO images have 6 or 7); the rest are counted ("extra_caption"). A sentence's
text is its "raw" field, or its tokens joined when "raw" is empty. Skipped and counted: entries with a
bad field ("bad_row"), images listed twice ("duplicate"), empty sentences ("empty_caption"), images with
no sentence left ("no_caption") and images whose file is missing ("missing_file").
"""

from __future__ import annotations

import json
import os
from typing import Any

from data_pipelines.public_sets.common import (
    CaptionSet,
    Skipped,
    caption_set,
    find_root,
    search_bases,
)

CAPTIONS_PER_IMAGE = 5
TEST_IMAGES = {"coco": 5000, "flickr30k": 1000}
# Image folders relative to the json's folder, in the order they are tried.
FLICKR30K_FOLDERS = (
    "flickr30k-images",
    "flickr30k_images",
    os.path.join("flickr30k_images", "flickr30k_images"),
    "images",
    "",
)
COCO_PREFIXES = ("", "images")


def _read_images(path: str, set_name: str) -> list[Any]:
    """The "images" list of a Karpathy json; ValueError, one line, when the file is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{set_name}: cannot read {path} as JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f'{set_name}: {path} has no "images" list (not a Karpathy split file)')
    return data["images"]


def _sentences(entry: dict, where: str, skipped: Skipped) -> list[str]:
    """The first CAPTIONS_PER_IMAGE non-empty sentences of an image entry."""
    texts = []
    for number, sentence in enumerate(entry["sentences"]):
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        tokens = sentence.get("tokens") if isinstance(sentence, dict) else None
        text = raw.strip() if isinstance(raw, str) else ""
        if not text and isinstance(tokens, list):
            text = " ".join(str(token) for token in tokens).strip()
        if text:
            texts.append(text)
        else:
            skipped.add("empty_caption", f"{where}: sentence {number} is empty")
    for _ in texts[CAPTIONS_PER_IMAGE:]:
        skipped.add("extra_caption", f"{where}: more than {CAPTIONS_PER_IMAGE} sentences")
    return texts[:CAPTIONS_PER_IMAGE]


def _load(
    set_name: str, folder: str | os.PathLike, split: str, candidates: tuple[str, ...]
) -> CaptionSet:
    """Reads dataset_{set_name}.json; `candidates` are image paths relative to a base folder, with
    {filepath} and {filename} slots."""
    json_name = f"dataset_{set_name}.json"
    root = find_root(folder, json_name, set_name)
    bases = search_bases(folder, root)
    skipped = Skipped()
    entries: list[tuple[str, str, list[str]]] = []
    seen: set[str] = set()
    splits: set[str] = set()
    for index, entry in enumerate(_read_images(os.path.join(root, json_name), set_name)):
        where = f"{json_name}: images[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("split"), str):
            skipped.add("bad_row", f"{where}: not an image entry with a split")
            continue
        splits.add(entry["split"])
        if entry["split"] != split:
            continue
        name, subfolder = entry.get("filename"), entry.get("filepath", "")
        if (
            not isinstance(name, str)
            or not name
            or os.path.basename(name) != name
            or not isinstance(subfolder, str)
            or ".." in subfolder.split("/")
            or not isinstance(entry.get("sentences"), list)
        ):
            skipped.add("bad_row", f"{where}: bad filename, filepath or sentences")
            continue
        image_id = f"{subfolder}/{name}" if subfolder else name
        if image_id in seen:
            skipped.add("duplicate", f"{where}: {image_id} listed again")
            continue
        seen.add(image_id)
        texts = _sentences(entry, where, skipped)
        if not texts:
            skipped.add("no_caption", f"{where}: {image_id} has no sentence")
            continue
        tried = [
            os.path.normpath(os.path.join(base, pattern.format(filepath=subfolder, filename=name)))
            for pattern in candidates
            for base in bases
        ]
        path = next((p for p in tried if os.path.isfile(p)), None)
        if path is None:
            skipped.add("missing_file", f"{where}: {image_id} not found (tried {tried[0]}, ...)")
            continue
        entries.append((image_id, path, texts))
    if split not in splits:
        raise ValueError(f"{set_name}: no image of split {split!r} (splits: {sorted(splits)})")
    return caption_set(set_name, root, "image", entries, skipped)


def load_coco_karpathy(folder: str | os.PathLike, split: str = "test") -> CaptionSet:
    """COCO's Karpathy split (module docstring): by default the 5k test images, 5 captions each."""
    patterns = tuple(os.path.join(prefix, "{filepath}", "{filename}") for prefix in COCO_PREFIXES)
    return _load("coco", folder, split, patterns)


def load_flickr30k_karpathy(folder: str | os.PathLike, split: str = "test") -> CaptionSet:
    """Flickr30k's Karpathy split (module docstring): by default the 1k test images, 5 captions each."""
    patterns = tuple(os.path.join(sub, "{filename}") for sub in FLICKR30K_FOLDERS)
    return _load("flickr30k", folder, split, patterns)
