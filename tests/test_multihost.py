"""The multi-host path on one machine: two processes of 4 CPU devices each, joined over localhost with
gloo collectives, train on the same global batches to the same parameters as one process of 8 devices
(up to the all-reduce's summation order); only process 0 writes logs and holds the workdir lock; both
save checkpoints cooperatively and exit 0. A SIGTERM to one process stops both at one step with a
checkpoint, and the rerun ends bitwise where an uninterrupted two-process run does."""

import json
import os
import random
import re
import signal
import time

import numpy as np
import pytest

from tests import helpers

# The shared reference config, stopped after 10 of its 60 steps (saving at 5 and 10).
HALT = 10
TIMEOUT = 300
# Long enough that a run SIGTERM'd a few steps in cannot end before its processes agree on a step (JAX's
# notifier looks for SIGTERM once a second), short enough for three runs.
PREEMPT_STEPS = 40


def _two_hosts(tiny_world, workdir: str, label: str = "run", **overrides) -> helpers.Job:
    """`python -m experiments.train` as processes 0 and 1 of one job, each output in a file."""
    flags = [
        *helpers.config_flags(*tiny_world, **{**helpers.RESUME_OVERRIDES, **overrides}),
        f"--workdir={workdir}",
    ]
    return helpers.Job("experiments.train", flags, f"{workdir}.{label}", processes=2)


def _train_on_two_hosts(
    tiny_world, workdir: str, label: str = "run", **overrides
) -> list[tuple[int, str, int]]:
    """Runs the two processes to the end; returns (returncode, output, pid) of each."""
    return _two_hosts(tiny_world, workdir, label, **overrides).finish(TIMEOUT)


def test_two_processes_train_like_one_with_all_devices(tiny_world, tmp_path, tmp_path_factory):
    workdir = str(tmp_path / "two_hosts")
    results = _train_on_two_hosts(tiny_world, workdir, halt_at_step=HALT)
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


def _wait_for_checkpoint(job: helpers.Job, workdir: str, step: int) -> None:
    """Blocks until the complete checkpoint of `step` appears (orbax renames it into place when done)."""
    deadline = time.monotonic() + TIMEOUT
    while not os.path.isdir(os.path.join(workdir, "checkpoints", str(step))):
        if any(proc.poll() is not None for proc in job.procs) or time.monotonic() > deadline:
            job.finish()
            pytest.fail(f"no checkpoint of step {step}:\n" + "\n".join(job.outputs())[-4000:])
        time.sleep(0.02)


def _final_state(tiny_world, workdir: str):
    config = helpers.tiny_config(
        *tiny_world, **{**helpers.RESUME_OVERRIDES, "total_steps": PREEMPT_STEPS}
    )
    state, meta = helpers.restore_params(workdir, config)
    assert int(state.step) == meta["data_position"] == PREEMPT_STEPS
    return state


def test_sigterm_to_one_process_saves_both_at_one_step_and_rerun_matches(tiny_world, tmp_path):
    uninterrupted = str(tmp_path / "uninterrupted")
    for i, (code, output, _) in enumerate(
        _train_on_two_hosts(tiny_world, uninterrupted, total_steps=PREEMPT_STEPS)
    ):
        assert code == 0, f"process {i} exited {code}:\n{output[-4000:]}"

    workdir = str(tmp_path / "preempted")
    job = _two_hosts(tiny_world, workdir, "preempted", total_steps=PREEMPT_STEPS)
    _wait_for_checkpoint(job, workdir, 5)
    time.sleep(random.Random(2468).uniform(0.0, 0.4))
    # Process 1 alone is told: the notice must reach process 0 (which holds the lock and reports)
    # through JAX's coordination service.
    assert all(proc.poll() is None for proc in job.procs), "the run ended before the SIGTERM"
    job.procs[1].send_signal(signal.SIGTERM)
    steps = []
    for i, (code, output, _) in enumerate(job.finish()):
        assert code == 0, f"process {i} exited {code}:\n{output[-4000:]}"
        match = re.search(r"train: preempted \(preemption notice\) at step (\d+); saved", output)
        assert match, f"process {i}:\n{output[-4000:]}"
        steps.append(int(match.group(1)))
    step = steps[0]
    assert steps[1] == step and 5 < step < PREEMPT_STEPS
    saved = [
        int(name) for name in os.listdir(os.path.join(workdir, "checkpoints")) if name.isdigit()
    ]
    assert max(saved) == step

    results = _train_on_two_hosts(tiny_world, workdir, "rerun", total_steps=PREEMPT_STEPS)
    for i, (code, output, _) in enumerate(results):
        assert code == 0, f"process {i} exited {code}:\n{output[-4000:]}"
    assert f"train: resumed from step {step}" in results[0][1]
    final, expected = _final_state(tiny_world, workdir), _final_state(tiny_world, uninterrupted)
    helpers.assert_trees_equal(final.params, expected.params)
    helpers.assert_trees_equal(final.opt_state, expected.opt_state)


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
