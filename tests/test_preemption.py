"""Exact resume under SIGKILL: a training process killed at arbitrary moments (twice) and rerun ends
with the very parameters of an uninterrupted run; a save interrupted half-way is never taken as the
latest checkpoint; and a checkpoint written on 1 device resumes and restores on 8 and on 4.
Under SIGTERM (a preemption notice) nothing is lost: the run saves at the next step, exits 0, and the
rerun ends with the uninterrupted run's parameters too."""

import logging
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

import jax
import pytest

from alignment import parallel
from experiments.runtime import checkpointing, preemption, restore
from experiments.training import students
from tests import helpers

STEPS = helpers.RESUME_OVERRIDES
TIMEOUT = 240


@pytest.fixture(scope="module")
def reference(tiny_world, tmp_path_factory):
    """(config, workdir, final state) of the uninterrupted run, in process on all 8 devices."""
    return helpers.uninterrupted_run(tiny_world, tmp_path_factory, **STEPS)


def _complete_steps(workdir: str) -> list[int]:
    directory = os.path.join(workdir, restore.CHECKPOINT_SUBDIR)
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(int(name) for name in names if name.isdigit())


def _latest_step(workdir: str) -> int | None:
    manager = checkpointing.make_manager(os.path.join(workdir, restore.CHECKPOINT_SUBDIR))
    try:
        return manager.latest_step()
    finally:
        manager.close()


class _Run:
    """`python -m experiments.train` in a subprocess, its output in a file."""

    def __init__(self, tiny_world, workdir: str, log: str, cache: str):
        env = helpers.subprocess_env(8)
        # Reruns load the compiled step from this cache instead of compiling it again.
        env["JAX_COMPILATION_CACHE_DIR"] = cache
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        self.log = log
        args = [*helpers.config_flags(*tiny_world, **STEPS), f"--workdir={workdir}"]
        with open(log, "w") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                helpers.python_module("experiments.train", *args),
                cwd=helpers.ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started = time.monotonic()

    def output(self) -> str:
        with open(self.log) as f:
            return f.read()

    def wait_for_checkpoint(self, workdir: str, step: int) -> None:
        """Blocks until a complete checkpoint of `step` or later appears."""
        while time.monotonic() - self.started < TIMEOUT:
            if any(s >= step for s in _complete_steps(workdir)):
                return
            if self.proc.poll() is not None:
                pytest.fail(
                    f"training exited {self.proc.returncode} early:\n{self.output()[-4000:]}"
                )
            time.sleep(0.02)
        self.kill()
        pytest.fail(f"no checkpoint of step {step} within {TIMEOUT}s:\n{self.output()[-4000:]}")

    def terminate(self) -> None:
        """SIGTERM, as a preempted TPU VM or cloud GPU gets."""
        assert self.proc.poll() is None, "the run ended before it could be preempted"
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no handler, no flush, no cleanup
        self.proc.wait()

    def finish(self) -> str:
        try:
            self.proc.wait(timeout=TIMEOUT)
        finally:
            self.kill()
        output = self.output()
        assert self.proc.returncode == 0, output[-4000:]
        return output


def _resumed_from(output: str) -> int | None:
    match = re.search(r"train: resumed from step (\d+)", output)
    return int(match.group(1)) if match else None


def test_sigkill_at_any_moment_then_rerun_matches_uninterrupted(tiny_world, reference, tmp_path):
    config, _, uninterrupted = reference
    workdir, cache = str(tmp_path / "work"), str(tmp_path / "jax_cache")
    # Each kill comes a seeded 0-0.4 s after a seeded checkpoint 5-15 steps past the resume point:
    # mid-step or mid-save, early enough that the run cannot have finished on any machine.
    moments = random.Random(1234)
    resumed_at: list[int | None] = [None]
    killed_after = []
    for attempt in range(2):
        run = _Run(tiny_world, workdir, str(tmp_path / f"run{attempt}.log"), cache)
        target = (resumed_at[-1] or 0) + moments.choice([5, 10, 15])
        run.wait_for_checkpoint(workdir, target)
        time.sleep(moments.uniform(0.0, 0.4))
        assert run.proc.poll() is None, "the run ended before it could be killed"
        run.kill()
        assert _resumed_from(run.output()) == resumed_at[-1]
        latest = _latest_step(workdir)
        assert latest is not None and target <= latest < config.total_steps
        killed_after.append(latest)
        resumed_at.append(latest)
    assert killed_after[0] < killed_after[1], "the second kill must come later in training"

    # A save cut off by the kill leaves orbax's '<step>.orbax-checkpoint-tmp' behind; make sure one
    # exists, for the next step, holding junk, and that it is never taken as a checkpoint.
    partial = os.path.join(
        workdir,
        restore.CHECKPOINT_SUBDIR,
        f"{killed_after[-1] + config.checkpoint_every}.orbax-checkpoint-tmp",
    )
    os.makedirs(os.path.join(partial, "state"), exist_ok=True)
    with open(os.path.join(partial, "state", "junk"), "wb") as f:
        f.write(os.urandom(64))
    assert _latest_step(workdir) == killed_after[-1]

    final = _Run(tiny_world, workdir, str(tmp_path / "final.log"), cache)
    output = final.finish()
    assert _resumed_from(output) == killed_after[-1]
    state, meta = helpers.restore_params(workdir, config)
    assert int(state.step) == meta["data_position"] == config.total_steps
    helpers.assert_trees_equal(state.params, uninterrupted.params)
    helpers.assert_trees_equal(state.opt_state, uninterrupted.opt_state)
    assert not any(".orbax-checkpoint-tmp" in name for name in os.listdir(os.path.dirname(partial)))


def _preempted_at(output: str) -> int | None:
    match = re.search(r"train: preempted \(SIGTERM\) at step (\d+); saved", output)
    return int(match.group(1)) if match else None


def test_sigterm_saves_at_the_next_step_and_rerun_matches_uninterrupted(
    tiny_world, reference, tmp_path
):
    config, _, uninterrupted = reference
    workdir, cache = str(tmp_path / "work"), str(tmp_path / "jax_cache")
    # Once training runs (a seeded checkpoint 5-15 steps in), SIGTERM comes a seeded 0-0.4 s later.
    moments = random.Random(4321)
    run = _Run(tiny_world, workdir, str(tmp_path / "preempted.log"), cache)
    target = moments.choice([5, 10, 15])
    run.wait_for_checkpoint(workdir, target)
    time.sleep(moments.uniform(0.0, 0.4))
    run.terminate()
    output = run.finish()  # exit status 0
    step = _preempted_at(output)
    assert step is not None, output[-4000:]
    assert target <= step < config.total_steps
    assert step in _complete_steps(workdir) and _latest_step(workdir) == step
    state, meta = helpers.restore_params(workdir, config, step=step)
    assert int(state.step) == meta["data_position"] == step

    rerun = _Run(tiny_world, workdir, str(tmp_path / "rerun.log"), cache)
    output = rerun.finish()
    assert _resumed_from(output) == step and _preempted_at(output) is None
    state, meta = helpers.restore_params(workdir, config)
    assert int(state.step) == meta["data_position"] == config.total_steps
    helpers.assert_trees_equal(state.params, uninterrupted.params)
    helpers.assert_trees_equal(state.opt_state, uninterrupted.opt_state)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="Python delivers signals to the main thread only",
)
def test_watch_turns_sigterm_into_a_flag_and_gives_the_handler_back():
    before = signal.getsignal(signal.SIGTERM)
    with preemption.Watch(start_step=0) as watch:
        assert not watch.reached(1)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs at the next bytecode boundary of the main thread
        assert watch.reached(2) and watch.notice == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_partial_save_is_not_the_latest_checkpoint(reference, tmp_path):
    """orbax names an unfinished save '<step>.orbax-checkpoint-tmp' (renamed to '<step>' only once
    complete); such a directory, even for a later step and with files in it, is not a step."""
    from etils import epath
    from orbax.checkpoint._src.path import atomicity

    config, _, uninterrupted = reference
    directory = tmp_path / restore.CHECKPOINT_SUBDIR
    manager = checkpointing.make_manager(str(directory), async_save=False)
    checkpointing.save(manager, 5, uninterrupted, {"data_position": 5})
    manager.wait_until_finished()
    manager.close()
    # The name orbax itself gives the temporary directory of step 10's save.
    tmp = atomicity.AtomicRenameTemporaryPath.from_final(epath.Path(directory / "10")).get()
    assert tmp.name == "10.orbax-checkpoint-tmp"
    for name in ("state", "meta"):
        os.makedirs(tmp / name)
        (tmp / name / "junk").write_bytes(b"\0partial")
    (tmp / "_CHECKPOINT_METADATA").write_text("{")
    manager = checkpointing.make_manager(str(directory))
    assert manager.latest_step() == 5 and list(manager.all_steps()) == [5]
    manager.close()
    state, meta = helpers.restore_params(str(tmp_path), config)
    assert meta["data_position"] == 5
    helpers.assert_trees_equal(state.params, uninterrupted.params)


def _on_devices(monkeypatch, count: int) -> None:
    """Makes the trainer build its mesh over the first `count` devices only."""
    make_mesh = parallel.make_mesh
    devices = jax.devices()[:count]
    monkeypatch.setattr(
        parallel,
        "make_mesh",
        lambda d=None, fsdp=1: make_mesh(devices if d is None else d, fsdp),
    )


def test_checkpoint_from_one_device_resumes_and_restores_on_8_and_4(
    reference, tmp_path, monkeypatch, caplog
):
    config, reference_dir, uninterrupted = reference
    # The uninterrupted run's state at step 20, saved from 1 device.
    on_one, _ = helpers.restore_params(reference_dir, config, jax.devices()[:1], step=20)
    assert len(on_one.params["head"]["fc6"]["kernel"].sharding.device_set) == 1
    one = tmp_path / "one_device"
    manager = checkpointing.make_manager(str(one / restore.CHECKPOINT_SUBDIR), async_save=False)
    checkpointing.save(manager, 20, on_one, {"data_position": 20})
    manager.wait_until_finished()
    manager.close()

    for count in (8, 4):
        # Evaluation: the state restores onto `count` devices unchanged.
        state, meta = helpers.restore_params(str(one), config, jax.devices()[:count])
        assert meta["data_position"] == 20
        assert len(state.params["head"]["fc6"]["kernel"].sharding.device_set) == count
        helpers.assert_trees_equal(state.params, on_one.params)
        helpers.assert_trees_equal(state.opt_state, on_one.opt_state)
        # Training: the run on `count` devices resumes at step 20 and runs to the end.
        workdir = str(tmp_path / f"on_{count}")
        shutil.copytree(one, workdir)
        caplog.clear()
        with monkeypatch.context() as patch, caplog.at_level(logging.INFO, logger="absl"):
            _on_devices(patch, count)
            final = students.train(config, workdir)
        assert "train: resumed from step 20" in caplog.text
        assert int(final.step) == config.total_steps
        assert len(final.params["head"]["fc6"]["kernel"].sharding.device_set) == count
        if count == 8:
            # The devices the uninterrupted run used: the same steps to the bit.
            helpers.assert_trees_equal(final.params, uninterrupted.params)
            helpers.assert_trees_equal(final.opt_state, uninterrupted.opt_state)
        else:
            # The same batches split 4 ways: equal up to summation order.
            helpers.assert_trees_close(final.params, uninterrupted.params, rtol=1e-4)
