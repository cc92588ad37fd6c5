"""python -m experiments.export writes a bundle that embeds images, sounds and sentences as the run itself
does (SearchIndex), read in a process where TensorFlow, TFDS and Beam cannot be imported; a missing or
corrupted bundle file is a one-line error."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from PIL import Image

from alignment.retrieval import l2_normalize
from experiments.bundle import load
from experiments.media.build import build_index
from experiments.media.search import Index
from experiments.search.index import query_inputs
from tests import helpers, test_retrieve

# The trained tiny run and its SearchIndex: the retrieval tests' fixtures.
run, index = test_retrieve.run, test_retrieve.index

BLOCKED = ("tensorflow", "tensorflow_datasets", "apache_beam")
# What the bundle's process must not load: the data stack and the training stack.
HEAVY = (*BLOCKED, "gensim", "flax", "orbax", "optax", "ml_collections", "grain")
# Unit rows from the exported program against the run's sharded one: XLA may fuse and round them
# differently, by a few float32 ulps of sums over at most a few hundred terms.
ATOL = 1e-4

# Loads the bundle and embeds the request's items; prints which of HEAVY it imported.
EMBED_SCRIPT = """
import json, sys
import numpy as np
try:
    import tensorflow
    sys.exit("tensorflow is importable")
except ImportError:
    pass
from experiments.bundle.load import load_bundle
bundle = load_bundle(sys.argv[1])
request = json.load(open(sys.argv[2]))
arrays = lambda names: [np.load(name, allow_pickle=False) for name in names]
np.savez(
    sys.argv[3],
    text=bundle.embed_text(request["sentences"]),
    sound=bundle.embed_sound(request["sounds"] + arrays(request["waveforms"])),
    image=bundle.embed_image(request["images"] + arrays(request["pixels"])),
)
print(json.dumps(sorted(set(request["heavy"]) & {m.split(".")[0] for m in sys.modules})))
"""


@pytest.fixture(scope="module")
def bundle_dir(run, tmp_path_factory):
    """The bundle of the tiny run, written by the entry point from --workdir alone (its saved config)."""
    out = str(tmp_path_factory.mktemp("bundle"))
    argv = ["export", f"--workdir={run[1]}", f"--out={out}"]
    # A process of its own, as a user runs it (flags parsed in this one would stay for other tests).
    done = helpers.run_module("experiments.export", *argv[1:], timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _media(index, folder):
    """(sentences, sound files, image files): captions, tones and test images of the tiny run."""
    has_text = np.flatnonzero(index.test["has_text"])[:3]
    sentences = [str(index.test["caption"][row]) for row in has_text]
    sentences.append(sentences[0] + " qqzzx")  # an unknown word is dropped
    rate = index.config.data.audio.sample_rate
    sounds = []
    for i, (hz, seconds, file_rate) in enumerate(
        [(440, 1.0, rate), (1200, 0.4, rate), (700, 2.0, 22050)]
    ):
        t = np.arange(int(seconds * file_rate)) / file_rate
        wave = (0.5 * np.sin(2 * np.pi * hz * t) + 0.01 * np.cos(7 * t)).astype(np.float32)
        sounds.append(str(folder / f"tone{i}.wav"))
        soundfile.write(sounds[-1], wave, file_rate, subtype="FLOAT")
    images = []
    for i, row in enumerate(np.flatnonzero(index.test["has_image"])[:3]):
        pixels = index.read(int(row), ["image"])["image"][0]
        if i == 2:  # a larger, non-square photo: resized and centre-cropped
            pixels = np.kron(pixels, np.ones((3, 2, 1), np.uint8))
        images.append(str(folder / f"image{i}.png"))
        Image.fromarray(pixels).save(images[-1])
    return sentences, sounds, images


def _reference(index, modality, key, values):
    """The run's own unit embeddings of queries (SearchIndex: sharded over 8 devices), in one batch."""
    queries = [query_inputs(index.config, index.builder, **{key: v})[1] for v in values]
    inputs = {name: np.concatenate([q[name] for q in queries]) for name in queries[0]}
    return l2_normalize(index.embed(inputs, modality)[index.layers[0]])


def _blocking_path(folder) -> str:
    """A folder of packages named BLOCKED whose import raises ImportError."""
    for name in BLOCKED:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    return str(folder)


def test_bundle_embeds_as_the_run_without_the_training_stack(bundle_dir, index, tmp_path):
    sentences, sounds, images = _media(index, tmp_path)
    waveform = str(tmp_path / "tone0.npy")
    np.save(waveform, soundfile.read(sounds[0], dtype="float32")[0])
    pixels = str(tmp_path / "image2.npy")
    np.save(pixels, np.asarray(Image.open(images[2])))
    request = {
        "sentences": sentences,
        "sounds": sounds,
        "waveforms": [waveform],
        "images": images,
        "pixels": [pixels],
        "heavy": list(HEAVY),
    }
    request_file, out = tmp_path / "request.json", tmp_path / "embedded.npz"
    request_file.write_text(json.dumps(request))
    env = helpers.subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([_blocking_path(tmp_path / "blocked"), helpers.ROOT])
    result = subprocess.run(
        [sys.executable, "-c", EMBED_SCRIPT, bundle_dir, str(request_file), str(out)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

    expected = {
        "text": _reference(index, "text", "sentence", sentences),
        "sound": _reference(index, "sound", "sound_path", sounds + sounds[:1]),
        "image": _reference(index, "image", "image_path", images + images[2:]),
    }
    with np.load(out) as embedded:
        for modality, rows in expected.items():
            got = embedded[modality]
            assert got.dtype == np.float32 and got.shape == (
                len(rows),
                index.config.model.fc_dims[-1],
            )
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
            np.testing.assert_allclose(got, rows, atol=ATOL, err_msg=modality)
        # Distinct inputs give distinct rows: the comparison above could fail.
        assert np.abs(embedded["image"][0] - embedded["image"][1]).max() > 10 * ATOL


def test_more_rows_than_a_batch(bundle_dir, index):
    bundle = load.load_bundle(bundle_dir)
    caption = str(index.test["caption"][np.flatnonzero(index.test["has_text"])[0]])
    many = bundle.embed_text([caption] * (load.BATCH_SIZE + 3))
    assert many.shape[0] == load.BATCH_SIZE + 3
    np.testing.assert_allclose(many, np.broadcast_to(many[0], many.shape), atol=1e-6)
    np.testing.assert_allclose(
        many[:1], _reference(index, "text", "sentence", [caption]), atol=ATOL
    )


def test_a_bundle_indexes_a_folder_with_the_media_indexer(bundle_dir, index, tmp_path):
    bundle = load.load_bundle(bundle_dir)
    folder = tmp_path / "media"
    folder.mkdir()
    sentences, _, images = _media(index, folder)
    (folder / "captions.txt").write_text(f"{sentences[0]}\nqqzzx blorfv\n")
    (folder / "broken.png").write_bytes(b"not an image")
    meta = build_index(bundle, str(folder), str(tmp_path / "index"))
    assert meta["items"] == {"image": 3, "sound": 3, "text": 1}
    assert sum(meta["skipped"].values()) == 2
    found = Index(str(tmp_path / "index")).search(bundle.embed_image([images[1]])[0], "image", 1)
    assert found[0].path == "image1.png" and found[0].cosine == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_are_one_line_errors(bundle_dir):
    bundle = load.load_bundle(bundle_dir)
    with pytest.raises(ValueError, match=r"sentence 1 'qqzzx blorfv': .*out of vocabulary"):
        bundle.embed_text(["dog", "qqzzx blorfv"])
    with pytest.raises(ValueError, match="sound 0 'missing.wav': sound file not found"):
        bundle.embed_sound(["missing.wav"])
    with pytest.raises(ValueError, match="sound 0: audio is silent"):
        bundle.embed_sound([np.zeros(800, np.float32)])
    with pytest.raises(ValueError, match="give a list of sentences"):
        bundle.embed_text("a dog barks")
    with pytest.raises(ValueError, match="no images to embed"):
        bundle.embed_image([])
    with pytest.raises(ValueError, match="layer 'fc9' was not exported"):
        bundle.embed_text(["dog"], layer="fc9")


def test_unreadable_items_are_skipped_and_reported(bundle_dir, tmp_path):
    bundle = load.load_bundle(bundle_dir)
    good, broken = tmp_path / "good.png", tmp_path / "broken.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 20, 3), np.uint8)).save(good)
    broken.write_bytes(b"not an image")
    reps, kept, skipped = bundle.embed_readable("image", [broken, good, good])
    assert kept == [1, 2] and reps.shape == (2, bundle.dims[bundle.layers[0]])
    np.testing.assert_allclose(reps, np.repeat(bundle.embed_image([good]), 2, axis=0), atol=1e-6)
    assert len(skipped) == 1 and skipped[0].startswith(f"image 0 {str(broken)!r}: cannot decode")
    reps, kept, skipped = bundle.embed_readable("image", [broken])
    assert reps.shape == (0, bundle.dims[bundle.layers[0]]) and kept == [] and len(skipped) == 1


def _one_line_error(directory) -> str:
    with pytest.raises(load.BundleError) as err:
        load.load_bundle(directory)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_or_corrupted_files_are_one_line_errors(bundle_dir, tmp_path):
    assert "not an inference bundle (no such folder)" in _one_line_error(tmp_path / "nowhere")
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    weights = copy / load.WEIGHTS_FILE
    data = weights.read_bytes()
    weights.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    assert f"{weights} is corrupted" in _one_line_error(copy)
    weights.write_bytes(data)
    (copy / load.function_file("text")).unlink()
    assert "embed_text.jax is missing" in _one_line_error(copy)
    (copy / load.MANIFEST_FILE).write_text(json.dumps({"format_version": load.FORMAT_VERSION}))
    assert "bundle.json is corrupted (no files, layers" in _one_line_error(copy)
    (copy / load.MANIFEST_FILE).write_text("{not json")
    assert "bundle.json is corrupted" in _one_line_error(copy)
    (copy / load.MANIFEST_FILE).unlink()
    assert "bundle.json is missing" in _one_line_error(copy)
