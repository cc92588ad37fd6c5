"""Public-set loaders on small folders written in each public set's distributed layout: the records they
return, what they count as skipped, and one-line errors for a wrong folder."""

import json
import os

import numpy as np
import pytest
import soundfile
from PIL import Image

from data_pipelines import public_sets
from data_pipelines.public_sets import audio_captions, image_captions, sound_classes

ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take"
US8K_HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"
CLOTHO_HEADER = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5"
AUDIOCAPS_HEADER = "audiocap_id,youtube_id,start_time,caption"


def _wav(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(str(path), np.zeros(64, np.float32), 8000)


def _jpg(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (4, 3), (200, 30, 30)).save(str(path))


def _text(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")


def _one_line(err):
    return "\n" not in str(err.value)


def test_esc50_rows_classes_and_skips(tmp_path):
    root = tmp_path / "ESC-50-master"  # the zip's folder: the loader looks one level down
    rows = [
        "1-100032-A-0.wav,1,0,dog,True,100032,A",
        "1-100038-A-14.wav,1,2,chirping_birds,False,100038,A",
        "2-100648-A-1.wav,2,1,rooster,True,100648,A",
        "2-100648-B-1.wav,2,1,rooster,True,100648,B",
        "3-1000-A-1.wav,3,1,rooster,True,1000,A",  # no file
        "4-2000-A-0.wav,x,0,dog,True,2000,A",  # bad fold
        "4-3000-A-0.wav,4,0,dog,True,3000",  # a field short
        "1-100032-A-0.wav,1,0,dog,True,100032,A",  # listed twice
        "5-4000-A-1.wav,5,1,cow,False,4000,A",  # target 1 is rooster
    ]
    _text(root / "meta" / "esc50.csv", [ESC50_HEADER, *rows])
    for name in ("1-100032-A-0.wav", "1-100038-A-14.wav", "2-100648-A-1.wav", "2-100648-B-1.wav"):
        _wav(root / "audio" / name)
    for name in ("4-2000-A-0.wav", "4-3000-A-0.wav", "5-4000-A-1.wav"):
        _wav(root / "audio" / name)
    data = public_sets.load("esc50", tmp_path)
    assert data.root == str(root)
    assert data.class_names == ("dog", "rooster", "chirping_birds")
    assert [os.path.basename(p) for p in data.paths] == [
        "1-100032-A-0.wav",
        "1-100038-A-14.wav",
        "2-100648-A-1.wav",
        "2-100648-B-1.wav",
    ]
    assert data.clips[0].path == str(root / "audio" / "1-100032-A-0.wav")
    np.testing.assert_array_equal(data.targets, [0, 2, 1, 1])
    np.testing.assert_array_equal(data.folds, [1, 1, 2, 2])
    assert data.clips[1].category == "chirping_birds"
    assert dict(data.skipped.counts) == {"missing_file": 1, "bad_row": 3, "duplicate": 1}
    assert data.skipped.summary() == "skipped 5 (bad_row=3, duplicate=1, missing_file=1)"
    assert "3-1000-A-1.wav" in data.skipped.examples["missing_file"][0]
    assert "meta/esc50.csv:10" in " ".join(data.skipped.examples["bad_row"])  # line numbers
    assert json.dumps(data.skipped.as_dict())


def test_esc50_wrong_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="esc50: expected meta/esc50.csv") as err:
        sound_classes.load_esc50(tmp_path)
    assert _one_line(err)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        sound_classes.load_esc50(tmp_path / "nowhere")
    _text(tmp_path / "meta" / "esc50.csv", ["filename,fold,target,category", "a.wav,1,0,dog"])
    (tmp_path / "audio").mkdir()
    with pytest.raises(
        ValueError, match=r"lacks the columns \['esc10', 'src_file', 'take'\]"
    ) as err:
        sound_classes.load_esc50(tmp_path)
    assert _one_line(err)
    _text(tmp_path / "meta" / "esc50.csv", [ESC50_HEADER, "1-1-A-0.wav,1,0,dog,True,1,A"])
    with pytest.raises(FileNotFoundError, match="nothing usable.*missing_file=1") as err:
        sound_classes.load_esc50(tmp_path)  # every file missing: the audio folder is wrong
    assert _one_line(err)
    (tmp_path / "meta" / "esc50.csv").write_bytes(ESC50_HEADER.encode() + b"\n\xff\xfe,1\n")
    with pytest.raises(ValueError, match="UTF-8"):
        sound_classes.load_esc50(tmp_path)


def test_esc50_class_targets_need_no_gap(tmp_path):
    _text(
        tmp_path / "meta" / "esc50.csv",
        [ESC50_HEADER, "1-1-A-0.wav,1,0,dog,True,1,A", "1-2-A-2.wav,1,2,cat,True,2,A"],
    )
    _wav(tmp_path / "audio" / "1-1-A-0.wav")
    with pytest.raises(ValueError, match="no gap"):
        sound_classes.load_esc50(tmp_path)


def test_urbansound8k_reads_fold_folders(tmp_path):
    rows = [
        "100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark",
        "100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing",
        "101415-3-0-2.wav,101415,1.0,5.0,2,1,3,dog_bark",
        "102305-6-0-0.wav,102305,0.0,2.6,1,1,6,gun_shot",  # in the wrong fold folder
        "7061-6-0-0.wav,7061,0.0,1.5,1,10,0,air_conditioner",
        "7062-1-0-0.wav,7062,0.0,1.5,1,10,1,car_horn",
        "7063-4-0-0.wav,7063,0.0,1.5,1,2,4,drilling",
        "7064-5-0-0.wav,7064,0.0,1.5,1,2,5,engine_idling",
        "bad.wav,7065,0.0,1.5,1,0,5,engine_idling",  # fold 0
    ]
    _text(tmp_path / "metadata" / "UrbanSound8K.csv", [US8K_HEADER, *rows])
    placed = {
        "fold5": ["100032-3-0-0.wav", "100263-2-0-117.wav"],
        "fold1": ["101415-3-0-2.wav"],
        "fold2": ["102305-6-0-0.wav", "7063-4-0-0.wav", "7064-5-0-0.wav"],
        "fold10": ["7061-6-0-0.wav", "7062-1-0-0.wav"],
    }
    for fold, names in placed.items():
        for name in names:
            _wav(tmp_path / "audio" / fold / name)
    data = sound_classes.load_urbansound8k(tmp_path)
    assert data.clips[0].path == str(tmp_path / "audio" / "fold5" / "100032-3-0-0.wav")
    assert data.clips[-1].path == str(tmp_path / "audio" / "fold2" / "7064-5-0-0.wav")
    np.testing.assert_array_equal(data.folds, [5, 5, 1, 10, 10, 2, 2])
    assert data.class_names == (
        "air_conditioner",
        "car_horn",
        "children_playing",
        "dog_bark",
        "drilling",
        "engine_idling",
        "gun_shot",  # named by its row, though its file is missing
    )
    assert dict(data.skipped.counts) == {"missing_file": 1, "bad_row": 1}


def _clotho(root, rows, files):
    _text(root / "clotho_captions_evaluation.csv", [CLOTHO_HEADER, *rows])
    (root / "evaluation").mkdir(parents=True, exist_ok=True)
    for name in files:
        _wav(root / "evaluation" / name)


def test_clotho_captions_point_at_their_clip(tmp_path):
    caps = ",".join(f"clip one caption {i}" for i in range(1, 6))
    rows = [
        f'"Santa Motor, take 2.wav",{caps}',
        'rain.wav,rain falls,"water drips, then stops",a storm,wet sounds,"he said ""rain"""',
        "missing.wav,a,b,c,d,e",
        "half.wav,first,,third,,fifth",
        "empty.wav,,,,,",
        "short.wav,only,three,fields",
    ]
    _clotho(tmp_path, rows, ["Santa Motor, take 2.wav", "rain.wav", "half.wav", "empty.wav"])
    data = public_sets.load("clotho", tmp_path)
    assert data.modality == "sound"
    assert data.item_ids == ("Santa Motor, take 2.wav", "rain.wav", "half.wav")
    assert data.items[1] == str(tmp_path / "evaluation" / "rain.wav")
    assert len(data.captions) == 5 + 5 + 3
    assert data.captions[6] == "water drips, then stops"
    assert data.captions[9] == 'he said "rain"'
    np.testing.assert_array_equal(data.caption_item, [0] * 5 + [1] * 5 + [2] * 3)
    assert data.item_captions()[2] == [10, 11, 12]
    assert dict(data.skipped.counts) == {
        "missing_file": 1,
        "empty_caption": 7,
        "no_caption": 1,
        "bad_row": 1,
    }


def test_clotho_wrong_folders(tmp_path):
    _text(tmp_path / "clotho_captions_evaluation.csv", [CLOTHO_HEADER, "a.wav,1,2,3,4,5"])
    with pytest.raises(FileNotFoundError, match="no evaluation/ folder") as err:
        audio_captions.load_clotho(tmp_path)
    assert _one_line(err)
    with pytest.raises(FileNotFoundError, match="clotho_captions_development.csv"):
        audio_captions.load_clotho(tmp_path, split="development")


def test_audiocaps_groups_captions_by_youtube_id(tmp_path):
    rows = [
        "103549,7fmOlUlwoNg,20,Constant rattling noise and sharp vibrations",
        "103548,7fmOlUlwoNg,20,A rattling and humming",
        "103541,6BJ455B1aAs,0,A motorboat engine revs",
        "103540,YabcdefghiJ,30,a speech",
        "103539,noFileHere1,30,wind blows",
        "103538,noFileHere1,30,wind blows hard",
        "103537,7fmOlUlwoNg,20,",
        "103548,6BJ455B1aAs,0,listed twice",
        "103536,,0,no id",
    ]
    _text(tmp_path / "test.csv", [AUDIOCAPS_HEADER, *rows])
    _wav(tmp_path / "audio" / "test" / "7fmOlUlwoNg.wav")
    soundfile.write(str(tmp_path / "audio" / "test" / "Y6BJ455B1aAs.flac"), np.zeros(64), 8000)
    _wav(tmp_path / "audio" / "test" / "YabcdefghiJ.wav")  # an id that starts with Y: exact name
    _wav(tmp_path / "audio" / "test" / "YYabcdefghiJ.wav")
    data = public_sets.load("audiocaps", tmp_path)
    assert data.item_ids == ("7fmOlUlwoNg", "6BJ455B1aAs", "YabcdefghiJ")
    assert data.items[1].endswith("Y6BJ455B1aAs.flac")
    assert data.items[2] == str(tmp_path / "audio" / "test" / "YabcdefghiJ.wav")
    assert data.captions[:2] == (
        "Constant rattling noise and sharp vibrations",
        "A rattling and humming",
    )
    np.testing.assert_array_equal(data.caption_item, [0, 0, 1, 2])
    assert dict(data.skipped.counts) == {
        "missing_file": 2,  # rows, not clips
        "empty_caption": 1,
        "duplicate": 1,
        "bad_row": 1,
    }


def test_audiocaps_repository_layout_and_errors(tmp_path):
    # The repository keeps its csv files in dataset/; the audio lies beside it in the given folder.
    _text(tmp_path / "dataset" / "test.csv", [AUDIOCAPS_HEADER, "1,abcdefghijk,0,a dog barks"])
    with pytest.raises(FileNotFoundError, match="no sound files") as err:
        audio_captions.load_audiocaps(tmp_path)
    assert _one_line(err)
    _wav(tmp_path / "test" / "abcdefghijk.wav")
    _wav(tmp_path / "audio" / "abcdefghijk.wav")  # a later folder: not taken
    data = audio_captions.load_audiocaps(tmp_path)
    assert data.items == (str(tmp_path / "test" / "abcdefghijk.wav"),)
    assert data.root == str(tmp_path / "dataset")
    with pytest.raises(ValueError, match="lacks the columns"):
        _text(tmp_path / "dataset" / "test.csv", ["youtube_id,caption", "abcdefghijk,a dog"])
        audio_captions.load_audiocaps(tmp_path)


def _sentences(*texts):
    return [
        {"raw": t, "tokens": t.lower().split(), "imgid": 0, "sentid": i}
        for i, t in enumerate(texts)
    ]


def test_coco_karpathy_test_split(tmp_path):
    images = [
        {
            "filepath": "val2014",
            "filename": "COCO_val2014_000000391895.jpg",
            "split": "test",
            "sentences": _sentences(*(f"A man rides {i}." for i in range(7))),
            "cocoid": 391895,
        },
        {
            "filepath": "val2014",
            "filename": "COCO_val2014_000000522418.jpg",
            "split": "val",
            "sentences": _sentences("a woman"),
            "cocoid": 522418,
        },
        {
            "filepath": "train2014",
            "filename": "COCO_train2014_000000000009.jpg",
            "split": "test",
            "sentences": [{"raw": "", "tokens": ["a", "plate"]}, *_sentences("food", "", "more")],
        },
        {
            "filepath": "val2014",
            "filename": "COCO_val2014_000000000042.jpg",
            "split": "test",
            "sentences": _sentences("missing image"),
        },
        {"filepath": "val2014", "split": "test", "sentences": []},  # no filename
        "not an entry",
    ]
    _text(tmp_path / "dataset_coco.json", [json.dumps({"images": images, "dataset": "coco"})])
    _jpg(tmp_path / "val2014" / "COCO_val2014_000000391895.jpg")
    _jpg(tmp_path / "val2014" / "COCO_val2014_000000522418.jpg")
    _jpg(tmp_path / "images" / "train2014" / "COCO_train2014_000000000009.jpg")
    data = public_sets.load("coco", tmp_path)
    assert data.modality == "image"
    assert data.item_ids == (
        "val2014/COCO_val2014_000000391895.jpg",
        "train2014/COCO_train2014_000000000009.jpg",
    )
    assert data.items[1] == str(
        tmp_path / "images" / "train2014" / "COCO_train2014_000000000009.jpg"
    )
    assert data.captions[:5] == tuple(f"A man rides {i}." for i in range(5))  # the first five
    assert data.captions[5:] == ("a plate", "food", "more")  # tokens when raw is empty
    np.testing.assert_array_equal(data.caption_item, [0] * 5 + [1] * 3)
    assert dict(data.skipped.counts) == {
        "extra_caption": 2,
        "empty_caption": 1,
        "missing_file": 1,
        "bad_row": 2,
    }
    val = image_captions.load_coco_karpathy(tmp_path, split="val")
    assert val.captions == ("a woman",)
    with pytest.raises(ValueError, match=r"no image of split 'tset' \(splits: \['test', 'val'\]\)"):
        image_captions.load_coco_karpathy(tmp_path, split="tset")


@pytest.mark.parametrize(
    "images_folder", ["flickr30k-images", "flickr30k_images/flickr30k_images", "."]
)
def test_flickr30k_image_folders(tmp_path, images_folder):
    images = [
        {"filename": "1000092795.jpg", "split": "test", "sentences": _sentences(*"abcde")},
        {"filename": "10002456.jpg", "split": "train", "sentences": _sentences(*"abcde")},
    ]
    _text(tmp_path / "karpathy" / "dataset_flickr30k.json", [json.dumps({"images": images})])
    _jpg(tmp_path / images_folder / "1000092795.jpg")  # beside the given folder, not the json
    data = image_captions.load_flickr30k_karpathy(tmp_path)
    assert data.items == (os.path.normpath(str(tmp_path / images_folder / "1000092795.jpg")),)
    assert data.captions == tuple("abcde") and data.skipped.total == 0


def test_karpathy_json_errors(tmp_path):
    (tmp_path / "dataset_flickr30k.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .* as JSON") as err:
        image_captions.load_flickr30k_karpathy(tmp_path)
    assert _one_line(err)
    (tmp_path / "dataset_flickr30k.json").write_text('{"annotations": []}')
    with pytest.raises(ValueError, match='no "images" list'):
        image_captions.load_flickr30k_karpathy(tmp_path)
    with pytest.raises(ValueError, match="unknown public set"):
        public_sets.load("imagenet", tmp_path)
