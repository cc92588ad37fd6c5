"""The multi-host path on one machine: two processes of 4 CPU devices each, joined over localhost with
gloo collectives, train on the same global batches to the same parameters as one process of 8 devices
(up to the all-reduce's summation order); only process 0 writes logs and holds the workdir lock; both
save checkpoints cooperatively and exit 0."""

import json
import os
import socket
import subprocess

import numpy as np
import pytest

from tests import helpers

# The shared reference config, stopped after 10 of its 60 steps (saving at 5 and 10).
HALT = 10
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_on_two_hosts(tiny_world, workdir: str) -> list[tuple[int, str, int]]:
    """Runs the two processes to the end; returns (returncode, output, pid) of each."""
    port = _free_port()
    args = [
        *helpers.config_flags(*tiny_world, **helpers.RESUME_OVERRIDES, halt_at_step=HALT),
        f"--workdir={workdir}",
        "--distributed",
        "--cpu_collectives",
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
    ]
    procs = [
        subprocess.Popen(
            helpers.python_module("experiments.train", *args, f"--process_id={i}"),
            cwd=helpers.ROOT,
            env=helpers.subprocess_env(devices=4),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    try:
        for proc in procs:
            output, _ = proc.communicate(timeout=TIMEOUT)
            results.append((proc.returncode, output, proc.pid))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def test_two_processes_train_like_one_with_all_devices(tiny_world, tmp_path, tmp_path_factory):
    workdir = str(tmp_path / "two_hosts")
    results = _train_on_two_hosts(tiny_world, workdir)
    for i, (code, output, _) in enumerate(results):
        assert code == 0, f"process {i} exited {code}:\n{output[-4000:]}"
        assert f"process {i}/2: 4 local of 8 devices" in output

    # Only process 0 reports, writes metrics and TensorBoard events, and holds the lock.
    assert "train 10/60" in results[0][1] and "train 10/60" not in results[1][1]
    assert f"halted at step {HALT}" in results[0][1]
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = {row["step"]: row["loss"] for row in map(json.loads, f) if "loss" in row}
    assert sorted(losses) == [5, 10]
    events = [name for name in os.listdir(workdir) if name.startswith("events.out.tfevents")]
    assert len(events) == 1
    with open(os.path.join(workdir, ".lock")) as f:
        assert f.read().strip() == str(results[0][2])

    # Both processes took part in each save: the checkpoints restore whole.
    config, reference_dir, _ = helpers.uninterrupted_run(
        tiny_world, tmp_path_factory, **helpers.RESUME_OVERRIDES
    )
    for step in (5, HALT):
        state, meta = helpers.restore_params(workdir, config, step=step)
        assert int(state.step) == meta["data_position"] == step
    reference, _ = helpers.restore_params(reference_dir, config, step=HALT)
    # Every step sees the same global batch on the same device order; what differs is the summation
    # order of gloo's all-reduce against XLA's in-process one: last-bit differences in each step's
    # gradient, a few 1e-6 of the parameters after 10 Adam steps.
    helpers.assert_trees_close(state.params, reference.params, rtol=2e-5)
    helpers.assert_trees_close(state.opt_state, reference.opt_state, rtol=2e-5)
    with open(os.path.join(reference_dir, "metrics.jsonl")) as f:
        expected = {row["step"]: row["loss"] for row in map(json.loads, f) if "loss" in row}
    np.testing.assert_allclose([losses[5], losses[10]], [expected[5], expected[10]], rtol=1e-6)


@pytest.mark.parametrize("hosts", [2, 4])
def test_host_batches_are_slices_of_the_global_batch(tiny_world, hosts):
    """What the equality above rests on, for the tiny config's own data: host p's batch is rows
    [p*B/P, (p+1)*B/P) of the single-host batch at every step."""
    from data_pipelines import input_pipeline as ip
    from experiments.runtime import datasets

    config = helpers.tiny_config(*tiny_world)
    builder = datasets.open_built(config.data)
    for stream in ("image_sound", "image_text"):
        one = ip._stream_sampler(builder, stream, "train", config.batch_size, config.seed)
        many = [
            ip._stream_sampler(builder, stream, "train", config.batch_size, config.seed, p, hosts)
            for p in range(hosts)
        ]
        for step in range(0, 3 * one.steps_per_epoch, max(1, one.steps_per_epoch // 4)):
            joined = [row for sampler in many for row in sampler.host_rows(step)]
            assert joined == one.global_rows(step).tolist()
