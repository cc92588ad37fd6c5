"""Indexing a folder of one's own media with a tiny trained run: counted skips, a text query finding its
item, resuming after a lost shard, float16 shards, faiss agreeing with exact search, the search CLI."""

import os
import shutil

import numpy as np
import pytest
import soundfile
from PIL import Image

from alignment import retrieval
from alignment.retrieval import l2_normalize
from data_pipelines.world.generator import World, WorldConfig
from experiments.media import store
from experiments.media.build import build_index
from experiments.media.embedder import Embedder
from experiments.media.search import Index
from experiments.search.index import SearchIndex
from experiments.training import students
from tests import helpers

SUFFIX = {"image": ".png", "sound": ".wav"}
ITEMS = 12  # test items written out as files
SHARD_SIZE = 8
TOP_K = 3
BROKEN = {
    "unreadable_sound": "sounds/truncated.wav",
    "unreadable_image": "images/text.png",
    "empty_text_file": "empty.txt",
}


def write_media_folder(folder: str, items: int = ITEMS) -> list[dict]:
    """The first `items` test items of the small world as files (images/ID.png, sounds/ID.wav, one
    caption a line in captions.txt) plus the BROKEN files; returns the items' samples."""
    world = World(WorldConfig.small())
    samples = [world.sample("test", i) for i in range(items)]
    os.makedirs(os.path.join(folder, "images"))
    os.makedirs(os.path.join(folder, "sounds"))
    for s in samples:
        Image.fromarray(s["image"]).save(os.path.join(folder, "images", f"{s['id']}.png"))
        path = os.path.join(folder, "sounds", f"{s['id']}.wav")
        # 32-bit float samples: the file holds the very waveform the data set's row was made from.
        soundfile.write(path, s["waveform"], world.config.sample_rate, subtype="FLOAT")
    with open(os.path.join(folder, "captions.txt"), "w") as f:
        f.write("\n\n".join(s["caption"] for s in samples) + "\n")
    with (
        open(os.path.join(folder, BROKEN["unreadable_sound"]), "wb") as f,
        open(path, "rb") as good,
    ):
        f.write(good.read()[:30])  # the header, cut short
    with open(os.path.join(folder, BROKEN["unreadable_image"]), "w") as f:
        f.write("not an image\n")
    open(os.path.join(folder, BROKEN["empty_text_file"]), "w").close()
    return samples


def train_tiny_run(tiny_world, workdir: str) -> None:
    config = helpers.tiny_config(*tiny_world, total_steps=20, checkpoint_every=20, log_every=20)
    students.train(config, workdir)


@pytest.fixture(scope="module")
def media(tiny_world, tmp_path_factory):
    """(workdir, source folder, index folder made by the CLI, samples, CLI result)."""
    root = tmp_path_factory.mktemp("media")
    workdir, source, index_dir = (str(root / n) for n in ("run", "source", "index"))
    train_tiny_run(tiny_world, workdir)
    samples = write_media_folder(source)
    result = helpers.run_module(
        "experiments.index",
        f"--workdir={workdir}",
        f"--source={source}",
        f"--index={index_dir}",
        f"--shard_size={SHARD_SIZE}",
    )
    return workdir, source, index_dir, samples, result


@pytest.fixture(scope="module")
def embedder(media):
    return Embedder(media[0])


def test_index_exits_zero_and_counts_skips(media):
    _, source, index_dir, _, result = media
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    meta = store.read_meta(index_dir)
    assert meta["complete"] and meta["items"] == {"image": ITEMS, "sound": ITEMS, "text": ITEMS}
    assert meta["skipped"] == dict.fromkeys(BROKEN, 1)
    assert (
        meta["shards"] == len(store.shard_numbers(index_dir)) == -(-(3 * ITEMS + 3) // SHARD_SIZE)
    )
    with open(os.path.join(index_dir, store.SKIPPED_FILE)) as f:
        skipped = {line.split("\t")[0]: line.split("\t")[1] for line in f}
    assert skipped == BROKEN
    assert meta["run"]["step"] == 20 and meta["run"]["layer"] == "fc7"
    assert meta["source"] == os.path.abspath(source)


def test_shards_hold_rows_paths_and_captions(media):
    _, _, index_dir, samples, _ = media
    shards = list(store.iter_shards(index_dir))
    texts = np.concatenate([s["text_captions"] for s in shards if "text_captions" in s])
    assert list(texts) == [s["caption"] for s in samples]
    images = np.concatenate([s["image_paths"] for s in shards if "image_paths" in s])
    assert list(images) == [f"images/{s['id']}.png" for s in samples]
    for shard in shards:
        for m in ("image", "sound", "text"):
            if f"{m}_embeddings" in shard:
                reps = shard[f"{m}_embeddings"]
                assert reps.dtype == np.float32 and reps.shape == (len(shard[f"{m}_paths"]), 32)
                assert np.all(np.isfinite(reps))


def test_folder_items_embed_and_rank_as_the_data_set_rows(media, embedder):
    """The files go through the data set's own front-ends: their embeddings are those of the same
    test rows of the run's data set, and a caption ranks its image and sound where the run does."""
    workdir, _, index_dir, samples, _ = media
    run, index = SearchIndex(embedder.config, workdir), Index(index_dir)
    ids = [s["id"] for s in samples]
    stored = {}
    for target in ("image", "sound", "text"):
        rows, reps = run.gallery(target)
        position = {str(run.test["id"][r]): i for i, r in enumerate(rows)}
        stored[target] = l2_normalize(reps["fc7"][[position[i] for i in ids]])
        np.testing.assert_allclose(index.table(target).embeddings, stored[target], atol=1e-5)
    for target in ("image", "sound"):
        expected = retrieval.ranks(stored["text"], stored[target])
        found = []
        for s in samples:
            matches = index.search(embedder.embed_one("text", s["caption"]), target, ITEMS)
            found.append(
                [m.path for m in matches].index(f"{target}s/{s['id']}{SUFFIX[target]}") + 1
            )
        np.testing.assert_array_equal(found, expected)
    # Where the run finds a caption's sound first, so does the index (at least one such item here).
    assert np.any(expected == 1)


def test_resume_redoes_only_the_missing_shard(media, embedder, tmp_path):
    _, source, index_dir, _, _ = media
    copy = str(tmp_path / "index")
    shutil.copytree(index_dir, copy)
    before = {n: os.stat(store.shard_path(copy, n)).st_mtime_ns for n in store.shard_numbers(copy)}
    original = store.read_shard(copy, 1)
    os.remove(store.shard_path(copy, 1))
    build_index(embedder, source, copy, shard_size=SHARD_SIZE)
    after = {n: os.stat(store.shard_path(copy, n)).st_mtime_ns for n in store.shard_numbers(copy)}
    assert set(after) == set(before)
    assert [n for n in before if after[n] != before[n]] == [1]
    redone = store.read_shard(copy, 1)
    assert set(redone) == set(original)
    for name, values in original.items():
        if values.dtype.kind == "f":
            np.testing.assert_allclose(redone[name], values, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(redone[name], values)
    assert store.read_meta(copy)["items"] == store.read_meta(index_dir)["items"]
    with pytest.raises(ValueError, match="another dtype"):
        build_index(embedder, source, copy, dtype="float16", shard_size=SHARD_SIZE)


def test_float16_shards(media, embedder, tmp_path):
    _, source, index_dir, samples, _ = media
    half = str(tmp_path / "half")
    build_index(embedder, source, half, dtype="float16", shard_size=64)
    shard = store.read_shard(half, 0)
    assert shard["image_embeddings"].dtype == np.float16
    full = np.concatenate(
        [s["image_embeddings"] for s in store.iter_shards(index_dir) if "image_embeddings" in s]
    )
    np.testing.assert_allclose(
        shard["image_embeddings"].astype(np.float32), full, rtol=2e-3, atol=1e-3
    )
    query = embedder.embed_one("text", samples[2]["caption"])
    assert [m.path for m in Index(half).search(query, "image", 3)] == [
        m.path for m in Index(index_dir).search(query, "image", 3)
    ]


def test_faiss_agrees_with_exact_search(media, embedder):
    _, _, index_dir, samples, _ = media
    exact, approximate = Index(index_dir), Index(index_dir, exact_max_items=0)
    for s in samples[:4]:
        query = embedder.embed_one("text", s["caption"])
        for target in ("image", "sound", "text"):
            a, b = exact.search(query, target, 5), approximate.search(query, target, 5)
            assert approximate.table(target).faiss_index is not None
            assert exact.table(target).faiss_index is None
            np.testing.assert_allclose([m.cosine for m in a], [m.cosine for m in b], atol=1e-5)
            assert [m.path for m in a] == [m.path for m in b]


def test_incomplete_or_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a complete index"):
        Index(str(tmp_path))


def test_search_command_line(media):
    _, _, index_dir, samples, _ = media
    caption = samples[0]["caption"]
    # A process of its own: the command shares its query flags' names with experiments.retrieve.
    result = helpers.run_module(
        "experiments.search_index",
        f"--index={index_dir}",
        f"--query_text={caption}",
        "--target=text",
        "--top_k=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"text query -> text ({ITEMS} items in {index_dir})"
    rank, cosine, path, *words = lines[1].split()
    assert rank == "1" and float(cosine) == pytest.approx(1.0, abs=1e-4)
    assert path == "captions.txt:1" and " ".join(words) == caption
    assert len(lines) == 3
