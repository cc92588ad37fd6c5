"""studies/class_level.py: the median ranks of a ranker that knows only the class, and what the
report says with them."""

import json
import pathlib
import sys

import numpy as np
import pytest

from studies import class_level

DIRECTIONS = ("image->sound", "sound->image")


def test_a_perfect_class_level_ranker_sits_at_the_middle_of_the_class_block():
    # 12 classes of 30: ranks uniform on 1..30, whose middle is 15.5; the rank r and 31 - r are
    # equally likely, so the median is as often above the middle as below it.
    medians = class_level.class_level_medians(360, 12, trials=4000)
    assert abs(medians.mean() - 15.5) < 0.1
    assert abs(np.mean(medians < 15.5) - np.mean(medians > 15.5)) < 0.05
    assert medians.min() >= 12 and medians.max() <= 19


def test_a_ranker_that_misses_the_class_ranks_after_it_and_needs_79_percent_for_the_floor_bar():
    assert class_level.class_level_medians(360, 12, accuracy=0.0, trials=200).min() > 30
    # Within 1.3x the floor (19.5 of 360 items in 12 classes) needs half the queries at ranks 1..19:
    # accuracy x 19/30 >= 1/2, i.e. at least 79% of the classes told.
    assert class_level.ceiling_chances(0.9, 360, 12)["within_floor"] > 0.99
    assert class_level.ceiling_chances(0.65, 360, 12)["within_floor"] < 0.01


def test_the_chance_of_beating_a_baseline_follows_how_far_it_is_from_the_class_level():
    checks = {
        "ranks": {"image->sound": 16.0, "sound->image": 17.0},
        "best_baseline": {"image->sound": 40.0, "sound->image": 15.5},
    }
    medians = class_level.class_level_medians(360, 12)
    chances = class_level.folder_chances(checks, medians)
    assert chances["image->sound"]["class_level_below_baseline"] == 1.0
    assert 0.35 < chances["sound->image"]["class_level_below_baseline"] < 0.65
    assert chances["sound->image"]["network"] == 17.0
    checks["best_baseline"]["image->sound"] = 10.0
    assert (
        class_level.folder_chances(checks, medians)["image->sound"]["class_level_below_baseline"]
        == 0.0
    )


def test_the_report_reads_own_data_and_sound_ceiling_reports(tmp_path, monkeypatch):
    own = {"kinds": {"effects": {"sizes": {"test_per_class": 30}, "checks": {
        "chance": 1 / 12, "ranks": dict.fromkeys(DIRECTIONS, 16.0),
        "best_baseline": {"image->sound": 15.0, "sound->image": 30.0}}}}}  # fmt: skip
    ceiling = {"kinds": {"effects": {"test_accuracy": 0.97}, "digits": {"test_accuracy": 0.9}}}
    own_path, ceiling_path = tmp_path / "own_data-x.json", tmp_path / "sound_ceiling-x.json"
    own_path.write_text(json.dumps(own))
    ceiling_path.write_text(json.dumps(ceiling))
    monkeypatch.setattr(class_level, "RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(
        sys, "argv", ["class_level", str(own_path), "--ceilings", str(ceiling_path)]
    )
    class_level.main()
    (written,) = pathlib.Path(tmp_path / "results").glob("class_level-*.json")
    report = json.loads(written.read_text())
    folder = report["folders"]["own_data-x:effects"]
    assert folder["image->sound"]["class_level_below_baseline"] < 0.2
    assert folder["sound->image"]["class_level_below_baseline"] == 1.0
    # digits has no own_data entry to size it, so only effects gets a ceiling row.
    assert list(report["ceilings"]) == ["sound_ceiling-x:effects"]
    assert report["ceilings"]["sound_ceiling-x:effects"]["within_floor"] == 1.0


def test_a_missing_or_foreign_report_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(class_level, "RESULTS_DIR", str(tmp_path / "results"))
    missing = tmp_path / "none.json"
    monkeypatch.setattr(sys, "argv", ["class_level", str(missing)])
    with pytest.raises(SystemExit, match=f"cannot read {missing}"):
        class_level.main()
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps([1, 2]))
    monkeypatch.setattr(sys, "argv", ["class_level", str(foreign)])
    with pytest.raises(SystemExit, match="is not a report of studies.own_data"):
        class_level.main()
    # A sound_ceiling report given as an own_data one: its kinds carry no bars.
    ceiling = tmp_path / "sound_ceiling-x.json"
    ceiling.write_text(json.dumps({"kinds": {"effects": {"test_accuracy": 0.97}}}))
    monkeypatch.setattr(sys, "argv", ["class_level", str(ceiling)])
    with pytest.raises(SystemExit, match="no folder in these reports has the bars"):
        class_level.main()
    assert not (tmp_path / "results").exists()
