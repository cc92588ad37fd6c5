"""The fixture writer: manifest layout, unique ids, decodable media, full label coverage, three
modalities in test rows, and the same jsonl files from the same seed. Tiny sizes: seconds per kind."""

import json
import os
import re

import numpy as np
import pytest
import soundfile
from PIL import Image

from fixtures import KINDS, TINY_SIZES, emoji, music, speech, write_fixture
from fixtures import animals as animal_kind
from fixtures import countries as country_kind
from fixtures import digits as digit_kind
from fixtures import effects as effect_kind
from fixtures import fruits as fruit_kind
from fixtures.colours import NAMED_COLOURS
from fixtures.public_layouts import write_clotho_fixture, write_esc50_fixture

SPLITS = ("train", "validation", "test")
ROW_KEYS = {"id", "image", "sound", "text", "label"}


@pytest.fixture(scope="module", params=sorted(KINDS))
def written(request, tmp_path_factory):
    """(kind, folder, counts, {split: rows}) of a tiny fixture of each kind, written once."""
    folder = str(tmp_path_factory.mktemp(request.param))
    counts = write_fixture(request.param, folder, **TINY_SIZES)
    rows = {}
    for split in SPLITS:
        with open(os.path.join(folder, f"{split}.jsonl"), encoding="utf-8") as lines:
            rows[split] = [json.loads(line) for line in lines]
    return request.param, folder, counts, rows


def test_manifest_layout(written):
    kind, folder, counts, rows = written
    jsonl = sorted(name for name in os.listdir(folder) if name.endswith(".jsonl"))
    assert jsonl == ["test.jsonl", "train.jsonl", "validation.jsonl"]
    classes = len(KINDS[kind].classes)
    assert counts["rows"] == {
        "train": 2 * TINY_SIZES["train_pairs_per_class"] * classes,
        "validation": TINY_SIZES["validation_per_class"] * classes,
        "test": TINY_SIZES["test_per_class"] * classes,
    }
    assert {split: len(r) for split, r in rows.items()} == counts["rows"]
    for split_rows in rows.values():
        for row in split_rows:
            assert set(row) <= ROW_KEYS and {"id", "image", "label"} <= set(row)
            for key in ("image", "sound"):
                if key in row:
                    assert not os.path.isabs(row[key]) and ".." not in row[key].split("/")


def test_ids_are_unique(written):
    _, _, _, rows = written
    ids = [row["id"] for split in SPLITS for row in rows[split]]
    assert len(ids) == len(set(ids))


def test_every_file_exists_and_decodes(written):
    _, folder, counts, rows = written
    images = sounds = 0
    for split in SPLITS:
        for row in rows[split]:
            with Image.open(os.path.join(folder, row["image"])) as image:
                image.load()
                assert image.mode in ("L", "RGB", "RGBA") and min(image.size) >= 32
            images += 1
            if "sound" in row:
                wave, rate = soundfile.read(os.path.join(folder, row["sound"]), always_2d=True)
                assert rate in (16000, 22050, 44100) and wave.shape[1] in (1, 2)
                assert wave.shape[0] > rate // 4 and np.isfinite(wave).all()
                assert np.sqrt(np.mean(wave**2)) > 1e-3  # not silent
                sounds += 1
    assert (images, sounds) == (counts["images"], counts["sounds"])


def test_labels_cover_every_class(written):
    kind, _, _, rows = written
    for split in SPLITS:
        assert sorted({row["label"] for row in rows[split]}) == sorted(KINDS[kind].classes)


def test_train_pairs_and_test_triplets(written):
    kind, _, _, rows = written
    per_class = TINY_SIZES["train_pairs_per_class"]
    for label in KINDS[kind].classes:
        train = [row for row in rows["train"] if row["label"] == label]
        with_sound = [row for row in train if "sound" in row and "text" not in row]
        with_text = [row for row in train if "text" in row and "sound" not in row]
        assert len(with_sound) == len(with_text) == per_class
        assert len({row["image"] for row in train}) == 2 * per_class  # separate image draws
    for split in ("validation", "test"):
        assert all({"image", "sound", "text", "label"} <= set(row) for row in rows[split])


def test_grey_images_get_no_colour_words(written):
    _, folder, _, rows = written
    for split in SPLITS:
        for row in rows[split]:
            if "text" not in row:
                continue
            with Image.open(os.path.join(folder, row["image"])) as image:
                if image.mode != "L":
                    continue
            assert not set(row["text"].replace(",", " ").split()) & set(NAMED_COLOURS)


def test_same_seed_same_manifest(written, tmp_path):
    kind, folder, _, _ = written
    speech._speak.cache_clear()  # so that espeak-ng itself runs again, not the cache
    again = str(tmp_path / "again")
    write_fixture(kind, again, **TINY_SIZES)
    for split in SPLITS:
        names = (os.path.join(folder, f"{split}.jsonl"), os.path.join(again, f"{split}.jsonl"))
        with open(names[0], "rb") as first, open(names[1], "rb") as second:
            assert first.read() == second.read(), split


def test_no_validation_file_without_validation_rows(tmp_path):
    counts = write_fixture("glyphs", str(tmp_path), train_pairs_per_class=1, test_per_class=1)
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith(".jsonl")) == [
        "test.jsonl",
        "train.jsonl",
    ]
    assert counts["rows"] == {"train": 24, "test": 12}
    # A rewrite with other sizes clears the earlier fixture first.
    write_fixture("glyphs", str(tmp_path), train_pairs_per_class=1, test_per_class=0)
    assert len(os.listdir(tmp_path / "sounds" / "test")) == 0


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_fixture("digits", str(tmp_path), train_pairs_per_class=1, test_per_class=1)


def test_digit_splits_use_disjoint_scans():
    sources = digit_kind.assign_sources(0, {"train": 100, "validation": 10, "test": 30})
    for label in range(len(digit_kind.CLASSES)):
        seen = [set(sources[split][label]) for split in SPLITS]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
        assert len(seen[0]) == 100


def test_missing_espeak_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        write_fixture("digits", str(tmp_path), train_pairs_per_class=1, test_per_class=1)


def test_animal_calls_never_say_a_caption_word():
    nouns = {
        word for animal in animal_kind.ANIMALS for noun in animal.nouns for word in noun.split()
    }
    for label in range(len(animal_kind.ANIMALS)):
        for seed in range(20):
            said = animal_kind.spoken(np.random.default_rng(seed), label)
            assert not set(said.replace(",", " ").replace("!", " ").split()) & nouns, said


@pytest.mark.parametrize("label", ["frog", "duck", "dog"])
def test_animal_captions_say_face_exactly_when_the_drawing_is_a_face(label):
    index = animal_kind.CLASSES.index(label)
    faces = 0
    for seed in range(24):
        drawn = animal_kind.picture(np.random.default_rng([seed, 1]), index, None)
        text = animal_kind.caption(np.random.default_rng([seed, 2]), index, drawn, grey=False)
        face = "face" in drawn.notes
        faces += face
        assert face == bool({"face", "head"} & set(text.replace(",", " ").split())), text
        assert drawn.pixels.dtype == np.uint8 and drawn.pixels.shape[2] == 3
        assert min(drawn.pixels.shape[:2]) >= 40
    # frogs come only as faces, ducks only whole, dogs both ways
    assert faces == {"frog": 24, "duck": 0}.get(label, faces) and (label != "dog" or 0 < faces < 24)


def test_missing_emoji_font_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(emoji, "FONT_DIRS", (str(tmp_path),))
    emoji.drawing.cache_clear()
    try:
        for kind in ("animals", "instruments"):
            with pytest.raises(RuntimeError, match="apt-get install fonts-noto-color-emoji"):
                write_fixture(
                    kind, str(tmp_path / "out"), train_pairs_per_class=1, test_per_class=1
                )
            assert not (tmp_path / "out").exists()  # checked before anything is written
    finally:
        emoji.drawing.cache_clear()


def test_missing_synthesizer_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(music.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install fluidsynth timgm6mb-soundfont"):
        write_fixture(
            "instruments", str(tmp_path / "out"), train_pairs_per_class=1, test_per_class=1
        )
    assert not (tmp_path / "out").exists()


def _peak_hz(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.shape[0])))
    return float(np.fft.rfftfreq(wave.shape[0], 1.0 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("pitch, hertz", [(69, 440.0), (81, 880.0)])
def test_a_note_sounds_at_its_pitch_for_its_length(pitch, hertz):
    # A flute (General MIDI 73) holding one note for 2 beats at 120 bpm: one second.
    wave, rate = music.play([music.Note(0.0, 2.0, pitch, 100)], 120.0, 73)
    loud = speech.trim_silence(wave, threshold=0.01 * float(np.max(np.abs(wave))))
    assert 0.9 <= loud.shape[0] / rate <= 1.6  # the note and its release
    middle = loud[int(0.2 * rate) : int(0.8 * rate)]
    assert abs(_peak_hz(middle, rate) - hertz) < 0.03 * hertz


def test_drum_hits_play_on_the_drum_channel():
    hits = [music.Note(0.5 * i, 0.2, 38, 110) for i in range(4)]  # snare drum in the drum kit
    drums, rate = music.play(hits, 120.0, None)
    piano, _ = music.play(hits, 120.0, 0)  # the same note numbers on a piano: D2
    assert np.sqrt(np.mean(drums**2)) > 1e-3
    assert not np.allclose(drums[: piano.shape[0]], piano[: drums.shape[0]], atol=1e-3)
    # Four separate strokes: the envelope rises four times, a quarter second (half a beat) apart.
    frame = rate // 100
    frames = drums[: drums.shape[0] // frame * frame].reshape(-1, frame)
    envelope = np.concatenate([[0.0], np.sqrt(np.mean(frames**2, axis=1))])
    above = envelope > 0.3 * envelope.max()
    onsets = np.flatnonzero(above[1:] & ~above[:-1])
    assert len(onsets) == 4 and np.allclose(np.diff(onsets), 25, atol=2)


def test_effects_are_heard_and_the_siren_sweeps_while_the_alarm_beeps():
    for label, name in enumerate(effect_kind.CLASSES):
        for seed in range(3):
            wave, rate = effect_kind.sound(np.random.default_rng([seed, label]), label)
            assert wave.shape[0] > rate // 4 and np.sqrt(np.mean(wave**2)) > 1e-3, (name, seed)
    siren, alarm = (effect_kind.CLASSES.index(name) for name in ("police car", "alarm clock"))
    for seed in range(6):
        # The siren's pitch, 50 ms at a time, stays in its range but moves across it.
        wave, rate = effect_kind.sound(np.random.default_rng(seed), siren)
        step = rate // 20
        peaks = [_peak_hz(wave[i : i + step], rate) for i in range(0, wave.shape[0] - step, step)]
        assert min(peaks) > 500 and max(peaks) < 1700 and max(peaks) - min(peaks) > 250, peaks
        # The alarm: two or more separate beeps of one 2-4 kHz tone, silence between them.
        wave, rate = effect_kind.sound(np.random.default_rng(seed), alarm)
        frame = rate // 100
        frames = wave[: wave.shape[0] // frame * frame].reshape(-1, frame)
        level = np.sqrt(np.mean(frames**2, axis=1))
        loud = level > 0.5 * level.max()
        assert int(loud[0]) + np.count_nonzero(loud[1:] & ~loud[:-1]) >= 2
        assert np.count_nonzero(level < 1e-3 * level.max()) >= 3
        assert 1950 < _peak_hz(wave, rate) < 4050


def test_spoken_layouts_refuse_a_kind_without_speech(tmp_path):
    for write in (write_esc50_fixture, write_clotho_fixture):
        with pytest.raises(ValueError, match="'instruments' has no spoken names"):
            write(tmp_path / write.__name__, "instruments")


def test_a_flag_is_drawn_as_one_flag():
    # France: blue, white and red from left to right (two letters "F" "R" would be grey boxes).
    flag = emoji.drawing(country_kind._flag("FR")).astype(float)
    third = flag.shape[1] // 3
    left, right = flag[:, :third, :3].mean((0, 1)), flag[:, -third:, :3].mean((0, 1))
    assert flag.shape[1] > flag.shape[0]
    assert left[2] > left[0] + 60 and right[0] > right[2] + 60


def test_countries_speak_numbers_in_their_language(monkeypatch):
    said = []
    monkeypatch.setattr(country_kind, "speak", lambda text, *voice: said.append((text, voice)))
    for label, country in enumerate(country_kind.COUNTRIES):
        country_kind.sound(np.random.default_rng(label), label)
        text, (voice, _, _) = said[-1]
        assert voice.split("+")[0] == country.language
        assert text.replace(", ", "").isdigit()  # numbers only: no word of any caption


def test_fruits_say_their_name_in_the_language_of_the_voice(monkeypatch):
    said = []
    monkeypatch.setattr(fruit_kind, "speak", lambda text, *voice: said.append((text, voice)))
    languages = set()
    for label, fruit in enumerate(fruit_kind.FRUITS):
        for seed in range(20):
            fruit_kind.sound(np.random.default_rng([label, seed]), label)
            text, (voice, _, _) = said[-1]
            language = next(k for k, v in fruit_kind.LANGUAGES.items() if voice.split("+")[0] in v)
            languages.add(language)
            names = fruit.names[language]
            parts = [part for part in re.split(r"[,!.]+\s*", text) if part]
            assert parts and all(part in names for part in parts), (text, voice)
    assert languages == set(fruit_kind.LANGUAGES)


def test_flag_emoji_need_text_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(country_kind.features, "check", lambda name: False)
    with pytest.raises(RuntimeError, match="libraqm"):
        write_fixture("countries", str(tmp_path / "out"), train_pairs_per_class=1, test_per_class=1)
    assert not (tmp_path / "out").exists()
