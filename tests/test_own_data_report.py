"""studies/own_data.py's reports: kinds of one day add up; other overrides never replace them; the
bars read results.json as the module docstring says."""

import json
import pathlib

import pytest

from studies import own_data


def _report(kind: str, overrides: list[str]) -> dict:
    return {"date": "2026-01-02", "seed": 1, "overrides": overrides, "kinds": {kind: {"ok": kind}}}


def test_kinds_add_up_and_other_overrides_stop_before_running(tmp_path, monkeypatch):
    monkeypatch.setattr(own_data, "RESULTS_DIR", str(tmp_path))
    own_data.check_report_name("own_data-seed1", _report("digits", []))  # nothing there yet
    own_data.write_report("own_data-seed1", _report("digits", []))
    own_data.check_report_name("own_data-seed1", _report("glyphs", []))
    path = own_data.write_report("own_data-seed1", _report("glyphs", []))
    assert set(json.loads(pathlib.Path(path).read_text())["kinds"]) == {"digits", "glyphs"}
    longer = ["--config.data.audio.clip_seconds=3"]
    with pytest.raises(
        SystemExit, match="holds runs with other overrides; name this one with --tag"
    ):
        own_data.check_report_name("own_data-seed1", _report("digits", longer))
    own_data.check_report_name("own_data-clip3s-seed1", _report("digits", longer))


DIRECTIONS = (
    "image->sound",
    "sound->image",
    "image->text",
    "text->image",
    "text->sound",
    "sound->text",
)


def _results(both: list[float]) -> dict:
    def entry(ranks):
        return {
            "retrieval": {
                d: {"median_rank": r, "recall@1": 0.0}
                for d, r in zip(DIRECTIONS, ranks, strict=True)
            }
        }

    return {
        "Random": entry([150.0] * 6),
        "Linear Reg.": entry([30.0, 31.0, 40.0, 41.0, 16.0, 25.0]),
        "CCA": entry([25.0] * 6),
        "Normalized CCA": entry([20.0, 21.0, 12.0, 11.0, 20.0, 20.0]),
        "Both": entry(both),
    }


def test_bars_need_every_direction_ahead_of_its_best_baseline_and_near_the_floor():
    # 360 test items of 12 classes: the class-level floor is 15, its 1.3x 19.5.
    tie = own_data.bars(_results([16, 17, 9, 11, 15, 18]), num_test=360, num_classes=12)
    assert tie["floor"] == 15.0 and tie["best"] == "Both"
    assert tie["best_baseline"]["text->image"] == 11.0  # normalized CCA's
    assert tie["best_baseline"]["text->sound"] == 16.0  # linear regression's
    assert not tie["beats_baselines"] and tie["within_floor"]
    ahead = own_data.bars(_results([16, 17, 9, 10, 15, 18]), num_test=360, num_classes=12)
    assert ahead["beats_baselines"] and ahead["within_floor"]
    far = own_data.bars(_results([16, 20, 9, 10, 15, 18]), num_test=360, num_classes=12)
    assert far["beats_baselines"] and not far["within_floor"]
    assert own_data.median_ranks(_results([16, 20, 9, 10, 15, 18]))["Both"]["sound->image"] == 20.0
