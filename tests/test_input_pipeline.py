"""Input pipeline: contract layout, host batches that together are the one-host batch, resume, eval
padding."""

import itertools
import shutil

import numpy as np
import pytest

from data_pipelines import input_pipeline as ip
from data_pipelines.builders import teacher_probs
from data_pipelines.builders.world_dataset import WorldBuilderConfig, WorldDataset
from data_pipelines.world import WorldConfig

WORLD = WorldConfig.small(num_train_sound=24, num_train_text=20, num_validation=4, num_test=11)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    config = WorldBuilderConfig.make("tiny", WORLD, background_sentences=200)
    builder = WorldDataset(data_dir=str(tmp_path_factory.mktemp("data")), config=config)
    builder.download_and_prepare()
    return builder.data_dir


def _take(iterator, n):
    return list(itertools.islice(iterator, n))


def test_training_batches_follow_the_contract_layout(data_dir):
    batch = next(ip.train_batches(data_dir, 8, seed=0))
    assert set(batch) == {"image_sound", "image_text"}
    pair = batch["image_sound"]
    assert pair["image"].shape == (8, 40, 40, 3) and pair["image"].dtype == np.uint8
    assert pair["sound"].shape == (8, 64, 65) and pair["sound"].dtype == np.float32
    pair = batch["image_text"]
    assert pair["text"].shape == (8, 16, 32) and pair["text_mask"].shape == (8, 16)
    assert pair["text_mask"].dtype == bool and "teacher_probs" not in pair


def _same(a, b):
    return all(np.array_equal(a[s][k], b[s][k]) for s in a for k in a[s])


def test_resume_continues_exactly_across_epochs(data_dir):
    full = _take(ip.train_batches(data_dir, 8, seed=3), 10)  # 3 image_sound steps per epoch
    resumed = _take(ip.train_batches(data_dir, 8, seed=3, start_step=5), 5)
    assert all(_same(a, b) for a, b in zip(full[5:], resumed, strict=True))
    other_seed = next(ip.train_batches(data_dir, 8, seed=4))
    assert not _same(full[0], other_seed)
    assert not _same(full[0], full[3])  # a new epoch draws a new order


def test_an_epoch_visits_distinct_rows(data_dir):
    builder = ip._builder(data_dir)
    sampler = ip._stream_sampler(builder, "image_sound", "train", global_batch=8, seed=0)
    ids = ip.load_stream(data_dir, "image_sound", with_ids=True)["id"]
    rows = np.concatenate([sampler.global_rows(step) for step in range(sampler.steps_per_epoch)])
    assert len(rows) == 24 and len(set(ids[rows].tolist())) == 24


@pytest.mark.parametrize("hosts", [2, 4])
def test_host_batches_together_are_the_single_host_batch(data_dir, hosts):
    """Host p's batch is rows [p*B/P, (p+1)*B/P) of the one-host batch, at every step and across
    epochs (the host-sharded stream reads a new subset each epoch), so training on any number of
    hosts sees the same global batches."""
    steps = 8  # image_text: 2 steps per epoch of 8, so 4 epochs
    single = _take(ip.train_batches(data_dir, 8, seed=1), steps)
    per_host = [
        _take(ip.train_batches(data_dir, 8, seed=1, process_index=p, process_count=hosts), steps)
        for p in range(hosts)
    ]
    for step in range(steps):
        for stream, arrays in single[step].items():
            for name, values in arrays.items():
                parts = [per_host[p][step][stream][name] for p in range(hosts)]
                assert all(part.shape[0] == 8 // hosts for part in parts)
                np.testing.assert_array_equal(np.concatenate(parts), values, f"{step} {name}")
    resumed = next(ip.train_batches(data_dir, 8, seed=1, start_step=5, process_index=1,
                                    process_count=hosts))  # fmt: skip
    assert _same(resumed, per_host[1][5])
    with pytest.raises(ValueError, match="divisible"):
        next(ip.train_batches(data_dir, 9, process_count=2))


def test_stream_holds_every_row_once(data_dir):
    for stream, expected in (("image_sound", 24), ("image_text", 20)):
        ids = ip.load_stream(data_dir, stream, with_ids=True)["id"].tolist()
        assert len(ids) == expected and len(set(ids)) == expected
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        next(ip.train_batches(data_dir, 32))


@pytest.mark.parametrize("hosts", [1, 2, 3])
def test_eval_batches_are_padded_and_lose_nothing(data_dir, hosts):
    seen = []
    counts = []
    for p in range(hosts):
        batches = list(ip.eval_batches(data_dir, "test", 6, features=("id", "sound", "label"),
                                       process_index=p, process_count=hosts))  # fmt: skip
        counts.append(len(batches))
        for b in batches:
            assert b["sound"].shape == (6 // hosts, 64, 65) and b["mask"].dtype == bool
            assert not b["sound"][~b["mask"]].any()
            seen += b["id"][b["mask"]].tolist()
    assert len(set(counts)) == 1 and counts[0] == ip.num_eval_batches(data_dir, "test", 6, hosts)
    assert len(seen) == 11 and len(set(seen)) == 11


def test_load_split_reads_everything(data_dir):
    split = ip.load_split(data_dir, "test")
    assert split["image"].shape == (11, 40, 40, 3) and split["has_text"].all()
    assert split["id"].shape == (11,) and (split["label"] >= 0).all()


def test_teacher_probs_added_later_are_read_by_row(data_dir, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(data_dir, copy)
    ids = ip.load_split(copy, "train", features=["id"])["id"]
    probs = np.random.default_rng(0).dirichlet(np.ones(5), size=len(ids)).astype(np.float32)
    teacher_probs.save_teacher_probs(copy, "train", probs)
    arrays = ip.load_stream(copy, "image_text", with_ids=True)
    lookup = dict(zip(ids.tolist(), probs, strict=True))
    assert np.allclose(
        arrays["teacher_probs"], np.stack([lookup[i] for i in arrays["id"].tolist()])
    )
    batch = next(ip.train_batches(copy, 4, seed=0))
    assert batch["image_sound"]["teacher_probs"].shape == (4, 5)
    # Probabilities of another split's length (a data set built again) are refused, not misread.
    teacher_probs.save_teacher_probs(copy, "train", probs[1:])
    with pytest.raises(ValueError, match="write the teacher's probabilities again"):
        ip.load_stream(copy, "image_text")


def test_each_host_reads_only_its_rows_of_each_batch(data_dir, tmp_path, monkeypatch):
    """Training reads rows by index, a batch at a time: host p of 2 asks the store for its 4 rows of
    each global batch of 8 and nothing else (no whole stream, no other host's rows), once the data set
    has its modality index (as every build writes it)."""
    indexed = str(tmp_path / "indexed")
    shutil.copytree(data_dir, indexed)
    ip.write_row_index(ip._builder(indexed))
    data_dir = indexed
    requests = []
    read = ip.records.Records.read

    def counting_read(self, rows, names, stored_dtype=False, out=None):
        requests.append(np.asarray(rows).copy())
        return read(self, rows, names, stored_dtype, out)

    monkeypatch.setattr(ip.records.Records, "read", counting_read)
    batches = ip.train_batches(data_dir, 8, seed=2, process_index=1, process_count=2)
    _take(batches, 6)
    batches.close()
    assert requests and all(len(rows) == 4 for rows in requests)
    sampler = ip._stream_sampler(ip._builder(data_dir), "image_sound", "train", 8, 2, 1, 2)
    split_rows = ip._stream_rows(ip._builder(data_dir), "image_sound", "train")
    wanted = [split_rows[sampler.host_rows(step)] for step in range(6)]
    # Requests alternate image_sound / image_text per step, and run ahead of the consumer.
    assert all(np.array_equal(requests[2 * step], wanted[step]) for step in range(6))


def test_the_modality_index_written_at_build_is_what_the_rows_say(data_dir, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(data_dir, copy)
    scanned = {split: ip._modality_flags(ip._builder(copy), split) for split in ("train", "test")}
    ip.write_row_index(ip._builder(copy))
    assert ip.modality_index_path(ip._builder(copy), "train").exists()
    for split, flags in scanned.items():
        indexed = ip._modality_flags(ip._builder(copy), split)
        for name in ip.MODALITY_FLAGS:
            np.testing.assert_array_equal(indexed[name], flags[name])
    assert ip.stream_sizes(copy) == {"image_sound": 24, "image_text": 20}


def test_worker_processes_make_the_same_batches_from_any_step(data_dir):
    """Batches made by worker processes (in shared memory) equal those made in this process, from a
    resumed step on, for the pair streams, augmented or not, and the teacher's image stream."""
    augment = ip.augmentation.AugmentConfig(
        image_shift=2, image_flip=True, time_masks=1, word_dropout=0.3
    )
    for make in (
        lambda workers: ip.train_batches(data_dir, 8, seed=3, start_step=4, workers=workers),
        lambda workers: ip.train_batches(
            data_dir, 8, seed=3, start_step=4, workers=workers, augment=augment
        ),
        lambda workers: ip.image_batches(
            data_dir, 8, "fine_label", seed=3, start_step=4, workers=workers
        ),
    ):
        in_process = _take(make(0), 5)
        batches = make(2)
        by_workers = _take(batches, 5)
        batches.close()
        flat = [ip.batch_workers._flatten(b) for b in (*in_process, *by_workers)]
        for ours, theirs in zip(flat[:5], flat[5:], strict=True):
            assert [path for path, _ in ours] == [path for path, _ in theirs]
            for (_, a), (_, b) in zip(ours, theirs, strict=True):
                assert a.dtype == b.dtype and np.array_equal(a, b)


def test_a_killed_worker_is_a_one_line_error(data_dir):
    import multiprocessing
    import os
    import signal

    batches = ip.train_batches(data_dir, 8, seed=0, workers=1)
    next(batches)
    (worker,) = [p for p in multiprocessing.active_children() if p.name.startswith("input-worker")]
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(ip.batch_workers.InputWorkerError, match=r"died with exit code -9") as err:
        _take(batches, 10)  # the batches made before the kill may still arrive
    assert "\n" not in str(err.value)


def test_a_worker_that_fails_is_a_one_line_error_naming_the_step(data_dir, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(data_dir, copy)
    batches = ip.train_batches(copy, 8, seed=0, workers=1)  # opens the data set here
    for path in (tmp_path / "copy").glob("*train.array_record*"):
        path.write_bytes(b"not a record file")
    with pytest.raises(
        ip.batch_workers.InputWorkerError, match=r"input-worker-0, step 0: \w+"
    ) as err:
        next(batches)
    assert "\n" not in str(err.value)


def test_workers_end_when_their_training_process_is_killed(data_dir):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import multiprocessing, sys, time\n"
        "from data_pipelines import input_pipeline as ip\n"
        f"batches = ip.train_batches({str(data_dir)!r}, 8, workers=1)\n"
        "next(batches)\n"
        "print(multiprocessing.active_children()[0].pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    consumer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(consumer.stdout.readline())
    consumer.send_signal(signal.SIGKILL)
    consumer.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError(f"input worker {worker} outlived its killed training process")
