"""notebooks/demo.ipynb runs top to bottom on the tiny path and shows every query and the retrieval table."""

import json
import os
import sys
import time

import nbformat
import pytest
from ipykernel import kernelspec
from nbclient import NotebookClient

from tests import helpers

NOTEBOOK = os.path.join(helpers.ROOT, "notebooks", "demo.ipynb")
TIMEOUT_S = 240


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    """A "python3" kernelspec running this interpreter, found first on JUPYTER_PATH."""
    prefix = tmp_path / "jupyter"
    kernel_dir = kernelspec.install(kernel_name="python3", prefix=str(prefix))
    with open(os.path.join(kernel_dir, "kernel.json")) as f:
        assert json.load(f)["argv"][0] == sys.executable
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "python3"


def _outputs(cell) -> list[dict]:
    return list(cell.get("outputs", []))


def _text(cell) -> str:
    parts = []
    for output in _outputs(cell):
        if output["output_type"] == "stream" and output["name"] == "stdout":
            parts.append(output["text"])
        elif "data" in output and "text/plain" in output["data"]:
            parts.append(output["data"]["text/plain"])
    return "".join(parts)


def _mimes(cell) -> list[str]:
    return [mime for output in _outputs(cell) for mime in output.get("data", {})]


def _cell(notebook, needle: str):
    found = [c for c in notebook.cells if c.cell_type == "code" and needle in c.source]
    assert len(found) == 1, needle
    return found[0]


def execute(path: str, venv_kernel: str, tmp_path, monkeypatch):
    """Runs the notebook at `path` top to bottom in the venv's kernel (which inherits this environment:
    8 fake CPU devices, conftest.py), writes it to tmp_path/executed.ipynb and returns it; no cell may
    end in an error."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([helpers.ROOT, os.environ.get("PYTHONPATH", "")])
    )
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        notebook,
        kernel_name=venv_kernel,
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": helpers.ROOT}},
    ).execute()
    nbformat.write(notebook, str(tmp_path / "executed.ipynb"))
    print(f"notebook ran in {time.perf_counter() - start:.0f}s")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not [o for o in _outputs(cell) if o["output_type"] == "error"], cell.source
    return notebook


def test_demo_notebook_runs_on_the_tiny_path(venv_kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("SHR_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("SHR_NOTEBOOK_TMPDIR", str(tmp_path / "run"))
    notebook = execute(NOTEBOOK, venv_kernel, tmp_path, monkeypatch)

    setup = _text(_cell(notebook, "jax.device_count()"))
    assert "on 8 cpu device(s)" in setup
    chosen = _text(_cell(notebook, "demo_runs.choose_run()"))
    assert "trained just now (tiny config)" in chosen and str(tmp_path / "run") in chosen

    # text -> sound: three ranked sounds, their spectrograms and a player each.
    text_to_sound = _cell(notebook, '"sound", top_k=3')
    lines = _text(text_to_sound).splitlines()
    assert lines[0].startswith("text -> sound")
    assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
    assert all(line.split()[2].startswith("test-") for line in lines[1:4])
    mimes = _mimes(text_to_sound)
    assert "image/png" in mimes
    players = [
        o["data"]["text/html"]
        for o in _outputs(text_to_sound)
        if "<audio" in o.get("data", {}).get("text/html", "")
    ]
    assert len(players) == 3

    # sound -> image: the query's player, then images inline.
    sound_to_image = _cell(notebook, '"sound", inputs, "image"')
    assert _mimes(sound_to_image).count("image/png") == 2
    assert any("<audio" in o.get("data", {}).get("text/html", "") for o in _outputs(sound_to_image))

    # image -> text: three captions.
    image_to_text = _cell(notebook, '"image", inputs, "text"')
    assert "image/png" in _mimes(image_to_text)
    captions = _text(image_to_text).split("top-3 captions:")[1].strip().splitlines()
    assert [line.split()[0] for line in captions] == ["1", "2", "3"]

    table = _text(_cell(notebook, "retrieval_summary")).splitlines()
    assert table[0].startswith("retrieval at fc7") and "median rank" in table[1]
    directions = [line.split()[0] for line in table[2:]]
    assert directions == ["IMG->SND", "SND->IMG", "IMG->TXT", "TXT->IMG", "TXT->SND", "SND->TXT"]
    assert all(float(line.split()[1]) >= 1 for line in table[2:])
