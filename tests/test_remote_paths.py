"""Remote paths on real GCS API calls (tests/fake_gcs.py, offline): a run whose teacher and workdir are
gs://, and whose data set is built into and read by row index from gs://, trains, checkpoints, and resumes from its
gs:// config and checkpoint, reading the same rows as from a local disk; evaluation tables land on gs://; word vectors and torchvision weights load from gs://; the workdir lock of an
object store refuses a second run and is taken over only from a holder that is gone."""

import json
import logging
import os
import socket
import subprocess
import time

import numpy as np
import pytest
from etils import epath

from alignment import parallel
from data_pipelines import paths, text
from experiments.configs import own_data
from experiments.evaluation.retrieval import DIRECTIONS
from experiments.reports import tables
from experiments.runtime import checkpointing, datasets, restore, run_config, workdir_lock
from experiments.training import students, teacher_import
from tests import fake_gcs, helpers

# Two short legs of the tiny config: a checkpoint at each, the run halted after the first.
STEPS = {"total_steps": 10, "checkpoint_every": 5, "log_every": 5}


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The root of an empty fake bucket, with this process's GCS clients (and its subprocesses')
    pointed at it while the module runs."""
    folder = str(tmp_path_factory.mktemp("fake_gcs"))
    with pytest.MonkeyPatch.context() as patch, fake_gcs.fake_gcs(folder) as environment:
        for name, value in environment.items():
            patch.setenv(name, value)
        yield "gs://bucket"


def _upload(local: str, remote: str) -> None:
    for folder, _, names in os.walk(local):
        for name in names:
            source = os.path.join(folder, name)
            paths.copy_file(source, epath.Path(remote) / os.path.relpath(source, local))


def test_a_gcs_run_trains_checkpoints_and_resumes(tiny_world, gcs, caplog, tmp_path):
    local_data, teacher_dir = tiny_world
    data_dir, remote_teacher, workdir = f"{gcs}/data", f"{gcs}/teacher", f"{gcs}/run"
    mesh = parallel.make_mesh()
    local = helpers.tiny_config(local_data, teacher_dir)
    _, teacher_params = restore.restore_teacher(local, teacher_dir, mesh)
    restore.save_teacher(remote_teacher, teacher_params, {})
    # Built into gs:// (through a local temporary folder: ArrayRecord writes local files).
    built = datasets.build(helpers.tiny_config(data_dir, remote_teacher).data)
    assert os.fspath(built.data_dir).startswith(f"{data_dir}/world_dataset/")
    assert datasets.is_built(built)

    halting = helpers.tiny_config(data_dir, remote_teacher, **STEPS, halt_at_step=5)
    caplog.set_level(logging.INFO)
    assert restore.latest_student_step(workdir) is None
    first = students.train(halting, workdir, config_file=helpers.TINY)
    assert int(first.step) == 5 == restore.latest_student_step(workdir)
    # The rerun of the same command resumes from the gs:// checkpoint, with the config gs:// holds.
    saved = run_config.load(workdir).config
    assert saved.data.data_dir == data_dir and saved.halt_at_step == 5
    resumed = students.train(saved, workdir, config_file=helpers.TINY)
    assert int(resumed.step) == 10
    assert "resumed from step 5 in gs://bucket/run/checkpoints" in caplog.text
    assert "workdir lock: lock object gs://bucket/run/.lock" in caplog.text

    _, restored, meta = restore.restore_student(saved, workdir, mesh)
    assert meta["data_position"] == int(restored.step) == 10
    helpers.assert_trees_equal(restored.params, resumed.params)
    kernel = lambda state: np.asarray(state.params["head"]["fc6"]["kernel"])
    assert not np.array_equal(kernel(resumed), kernel(first))
    run = epath.Path(workdir)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "loss" in row] == [5, 10]
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    assert not (run / workdir_lock.LOCK_FILE).exists()

    # The same run on the local copy of the data set, uninterrupted: the gs:// rows were the same rows.
    local_run = helpers.tiny_config(local_data, remote_teacher, **STEPS)
    uninterrupted = students.train(local_run, str(tmp_path / "local"), config_file=helpers.TINY)
    helpers.assert_trees_equal(uninterrupted.params, resumed.params)


def test_evaluation_tables_and_plot_are_written_to_gcs(gcs):
    scores = {"median_rank": 7.0, "recall@1": 0.1, "recall@5": 0.3, "recall@10": 0.5}
    directions = [f"{a}->{b}" for a, b in DIRECTIONS]
    retrieval = {key: dict(scores) for key in directions}
    results = {"Both": {"retrieval": retrieval, "chunk": 1000, "num_pairs": 5000, "transfer": None}}
    markdown = tables.write_report(results, f"{gcs}/eval")
    out = epath.Path(f"{gcs}/eval")
    assert (out / tables.TABLES_FILE).read_text() == markdown
    written = json.loads((out / tables.RESULTS_FILE).read_text())
    assert written["Both"]["retrieval"][directions[0]]["median_rank"] == 7.0
    assert (out / tables.PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_word_vectors_round_trip_through_gcs(gcs):
    vectors = text.train_word_vectors(["a red ball", "a blue cube"], text.TextConfig(word_dim=4))
    for name in ("vectors.txt", "vectors.bin"):
        text.save_word_vectors(vectors, f"{gcs}/w2v/{name}", binary=name.endswith(".bin"))
        loaded = text.load_word_vectors(f"{gcs}/w2v/{name}")
        np.testing.assert_allclose(loaded["ball"], vectors["ball"], rtol=1e-5)
    with pytest.raises(ValueError, match="not found"):
        text.load_word_vectors(f"{gcs}/w2v/missing.bin")


def test_torchvision_weights_load_from_gcs(gcs, tmp_path):
    torch = pytest.importorskip("torch")
    local = str(tmp_path / "weights.pth")
    torch.save({"features.0.weight": torch.arange(6.0).reshape(2, 3)}, local)
    _upload(str(tmp_path), f"{gcs}/weights")
    state = teacher_import.load_state_dict(f"{gcs}/weights/weights.pth")
    np.testing.assert_array_equal(state["features.0.weight"], np.arange(6.0).reshape(2, 3))


def test_a_second_run_on_a_gcs_workdir_is_refused_until_the_first_ends(gcs):
    workdir = f"{gcs}/busy"
    first = workdir_lock.WorkdirLock(workdir).acquire()
    holder = f"{os.getpid()} on {socket.gethostname()}"
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f"in use by training process {holder}"):
        workdir_lock.WorkdirLock(workdir).acquire()
    first.release()
    assert not (epath.Path(workdir) / workdir_lock.LOCK_FILE).exists()
    workdir_lock.WorkdirLock(workdir).acquire().release()


def _holder(lock: workdir_lock.ObjectLock, host: str, pid: int, age_s: float) -> None:
    record = {"host": host, "pid": pid, "token": "theirs", "renewed": time.time() - age_s}
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    lock.path.write_text(json.dumps(record))


def test_an_object_lock_is_taken_over_only_from_a_gone_holder(tmp_path):
    lock = workdir_lock.ObjectLock(str(tmp_path), stale_s=60)
    _holder(lock, "other-host", 1, age_s=5)
    with pytest.raises(workdir_lock.WorkdirBusyError, match="1 on other-host"):
        lock.acquire()
    _holder(lock, "other-host", 1, age_s=61)  # stale: its holder stopped renewing
    lock.acquire()
    lock.release()
    dead = _exited_pid()
    _holder(lock, socket.gethostname(), dead, age_s=5)  # fresh, but its process is gone
    lock.acquire()
    lock.release()


def _exited_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_an_object_lock_is_renewed_while_held(tmp_path):
    lock = workdir_lock.ObjectLock(str(tmp_path), renew_s=0.05)
    lock.acquire()
    taken = json.loads(lock.path.read_text())["renewed"]
    time.sleep(0.3)
    renewed = json.loads(lock.path.read_text())["renewed"]
    lock.release()
    assert renewed > taken
    assert not lock.path.exists()


def test_a_remote_data_dir_is_refused_to_beam_runners_that_write_on_workers(gcs, tmp_path):
    config = own_data.get_config()
    config.data.source, config.data.data_dir = str(tmp_path), f"{gcs}/elsewhere"
    with pytest.raises(ValueError, match="DataflowRunner workers write ArrayRecord files"):
        datasets.build(config.data, "runner=DataflowRunner,project=p")


def test_checkpoints_refuse_schemes_orbax_cannot_write():
    with pytest.raises(ValueError, match="local disk or gs://"):
        checkpointing.make_manager("s3://bucket/run/checkpoints")
    assert paths.is_remote("gs://b/x") and not paths.is_remote("runs/x")
