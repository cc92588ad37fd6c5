"""benchmarks/own_data.py's reports: kinds of one day add up; other overrides never replace them."""

import json
import pathlib

import pytest

from benchmarks import own_data


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
