"""notebooks/own_media.ipynb runs top to bottom on the tiny run's bundle: it indexes a folder with the
bundle and shows text, image and sound searches with thumbnails and players."""

import os

from tests import helpers, test_export, test_notebook, test_retrieve

NOTEBOOK = os.path.join(helpers.ROOT, "notebooks", "own_media.ipynb")

# The tiny run and its bundle (the export tests' fixtures) and the kernel of the demo notebook's test.
run, index, bundle_dir = test_retrieve.run, test_retrieve.index, test_export.bundle_dir
venv_kernel = test_notebook.venv_kernel


def _players(cell) -> int:
    return sum(
        "<audio" in o.get("data", {}).get("text/html", "") for o in test_notebook._outputs(cell)
    )


def _ranked(cell, heading: str) -> list[str]:
    """The three ranked lines printed after `heading` (stdout only: the displays come between them)."""
    printed = "".join(
        o["text"] for o in test_notebook._outputs(cell) if o["output_type"] == "stream"
    )
    return printed.split(heading)[1].splitlines()[1:4]


def test_own_media_notebook_runs_on_the_tiny_bundle(venv_kernel, bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SHR_BUNDLE", bundle_dir)
    # The notebook writes its own folder of the world.
    monkeypatch.delenv("SHR_MEDIA", raising=False)
    notebook = test_notebook.execute(NOTEBOOK, venv_kernel, tmp_path, monkeypatch)
    _check(notebook)


def _check(notebook) -> None:
    loaded = test_notebook._text(test_notebook._cell(notebook, "load_bundle(BUNDLE)"))
    assert loaded.startswith("bundle: step ") and "fc7 (32-d)" in loaded
    indexed = test_notebook._text(test_notebook._cell(notebook, "build_index(bundle"))
    assert "{'image': 18, 'sound': 15, 'text': 15}, skipped: none" in indexed

    text = test_notebook._cell(notebook, "bundle.embed_text([QUERY])")
    for target in ("image", "sound", "text"):
        ranked = _ranked(text, f"text -> {target} for")
        assert [line.split()[0] for line in ranked] == ["1", "2", "3"]
        cosines = [float(line.split()[1]) for line in ranked]
        assert cosines == sorted(cosines, reverse=True) and all(abs(c) <= 1 + 1e-5 for c in cosines)
    assert test_notebook._mimes(text).count("image/png") == 3 and _players(text) == 3

    image_to_sound = test_notebook._cell(notebook, 'index.table("image")')
    assert test_notebook._mimes(image_to_sound).count("image/png") == 1
    assert _players(image_to_sound) == 3
    sound_to_image = test_notebook._cell(notebook, 'index.table("sound")')
    assert test_notebook._mimes(sound_to_image).count("image/png") == 3
    assert _players(sound_to_image) == 1
