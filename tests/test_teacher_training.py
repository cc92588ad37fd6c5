"""The teacher is a task of the one training loop: a SIGTERM at a random step saves a checkpoint and
exits 0, and the same command run again ends with the very parameters of an uninterrupted run, in one
process and in two; its batches are read by index and augmented through data_pipelines.augment; its
probabilities are written a batch at a time and published only once complete."""

import os
import random
import re
import signal
import time

import jax
import numpy as np
import pytest

from alignment import parallel
from data_pipelines import augment, input_pipeline
from data_pipelines.builders import teacher_probs
from experiments.runtime import datasets, restore
from experiments.training import teacher
from tests import helpers

TIMEOUT = 300
# Long enough that a SIGTERM a few steps in comes before the end (two processes agree on a step once
# JAX's notifier, which looks once a second, has seen it), short enough for three runs.
STEPS = 40


def _job(tiny_world, workdir: str, label: str, processes: int) -> helpers.Job:
    """`python -m experiments.train_teacher` as one process of 8 devices or two of 4."""
    overrides = {
        "teacher.source": "train",
        "teacher.total_steps": STEPS,
        "checkpoint_every": 5,
        "log_every": 5,
        "keep_checkpoints": 20,
    }
    flags = [*helpers.config_flags(*tiny_world, **overrides), f"--workdir={workdir}"]
    return helpers.Job("experiments.train_teacher", flags, f"{workdir}.{label}", processes)


def _outputs(job: helpers.Job) -> list[str]:
    """Waits for every process; their outputs, once each has exited 0."""
    results = job.finish(TIMEOUT)
    for i, (code, output, _) in enumerate(results):
        assert code == 0, f"process {i} exited {code}:\n{output[-4000:]}"
    return [output for _, output, _ in results]


def _wait_for_checkpoint(job: helpers.Job, workdir: str, step: int) -> None:
    """Blocks until the teacher's complete checkpoint of `step` appears."""
    directory = os.path.join(
        workdir, restore.TEACHER_TRAINING_SUBDIR, restore.CHECKPOINT_SUBDIR, str(step)
    )
    deadline = time.monotonic() + TIMEOUT
    while not os.path.isdir(directory):
        if any(p.poll() is not None for p in job.procs) or time.monotonic() > deadline:
            job.finish(TIMEOUT)
            pytest.fail(f"no checkpoint of step {step}:\n" + "\n".join(job.outputs())[-4000:])
        time.sleep(0.02)


def _teacher_params(tiny_world, workdir: str):
    config = helpers.tiny_config(*tiny_world)
    _, params = restore.restore_teacher(
        config, os.path.join(workdir, restore.TEACHER_SUBDIR), parallel.make_mesh()
    )
    return params


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_then_rerun_ends_with_the_uninterrupted_teacher(tiny_world, tmp_path, processes):
    uninterrupted = str(tmp_path / "uninterrupted")
    output = _outputs(_job(tiny_world, uninterrupted, "run", processes))[0]
    assert f"teacher {STEPS}/{STEPS}" in output

    workdir = str(tmp_path / "preempted")
    job = _job(tiny_world, workdir, "preempted", processes)
    moments = random.Random(97 + processes)
    _wait_for_checkpoint(job, workdir, moments.choice([5, 10]))
    time.sleep(moments.uniform(0.0, 0.3))
    assert all(p.poll() is None for p in job.procs), "the run ended before the SIGTERM"
    # With two processes, the last one alone is told: the notice reaches the other through JAX.
    job.procs[-1].send_signal(signal.SIGTERM)
    steps = set()
    for output in _outputs(job):
        match = re.search(
            r"teacher: preempted \((SIGTERM|preemption notice)\) at step (\d+)", output
        )
        assert match, output[-4000:]
        steps.add(int(match.group(2)))
    (step,) = steps
    assert 5 <= step < STEPS
    assert not os.path.isdir(os.path.join(workdir, restore.TEACHER_SUBDIR))

    output = _outputs(_job(tiny_world, workdir, "rerun", processes))[0]
    assert f"teacher: resumed from step {step}" in output
    helpers.assert_trees_equal(
        _teacher_params(tiny_world, workdir), _teacher_params(tiny_world, uninterrupted)
    )


def test_teacher_batches_follow_the_augment_config(tiny_world):
    """Flips come from config.teacher.augment (a function of seed and step), not always."""
    config = helpers.tiny_config(*tiny_world)
    builder = datasets.open_built(config.data)
    plain = next(input_pipeline.image_batches(builder, 8, "fine_label", seed=1, start_step=3))
    again = next(input_pipeline.image_batches(builder, 8, "fine_label", seed=1, start_step=3))
    np.testing.assert_array_equal(plain["image"], again["image"])
    flip = augment.AugmentConfig(image_flip=True)
    flipped = next(
        input_pipeline.image_batches(builder, 8, "fine_label", seed=1, start_step=3, augment=flip)
    )
    np.testing.assert_array_equal(flipped["label"], plain["label"])
    mirrored = [
        np.array_equal(f, p[:, ::-1]) and not np.array_equal(f, p)
        for f, p in zip(flipped["image"], plain["image"], strict=True)
    ]
    assert 0 < sum(mirrored) < len(mirrored)


def test_probabilities_are_streamed_in_row_order_and_published_whole(tiny_world, tmp_path):
    config = helpers.tiny_config(*tiny_world)
    builder = datasets.open_built(config.data)
    module, params = restore.restore_teacher(config, tiny_world[1], parallel.make_mesh())
    rows = np.arange(builder.info.splits["test"].num_examples)
    images = input_pipeline.load_split(builder, "test", ["image"])["image"]
    expected = jax.nn.softmax(module.apply({"params": params}, images))
    dataset_dir = str(tmp_path)
    with teacher_probs.TeacherProbsWriter(dataset_dir, "test", len(rows), module.num_classes) as w:
        for probs, _ in teacher.predict_batches(
            module, params, builder, "test", rows, parallel.make_mesh()
        ):
            w.write(probs[:3])
            w.write(probs[3:])
            assert not teacher_probs.has_teacher_probs(dataset_dir, "test")
        w.close()
    stored = teacher_probs.load_teacher_probs(dataset_dir, "test")
    # The sharded batch against one unsharded call: float32 sums in another order.
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-6)


def test_a_failed_write_leaves_no_file(tmp_path):
    dataset_dir = str(tmp_path)
    with (
        pytest.raises(RuntimeError),
        teacher_probs.TeacherProbsWriter(dataset_dir, "train", 4, 2) as writer,
    ):
        writer.write(np.full((2, 2), 0.5, np.float32))
        raise RuntimeError("interrupted")
    assert not teacher_probs.has_teacher_probs(dataset_dir, "train")
    assert os.listdir(tmp_path / teacher_probs.TEACHER_DIR) == []
    writer = teacher_probs.TeacherProbsWriter(dataset_dir, "train", 4, 2)
    writer.write(np.full((2, 2), 0.5, np.float32))
    with pytest.raises(ValueError, match="only 2 of the split's 4 rows"):
        writer.close()
    assert not teacher_probs.has_teacher_probs(dataset_dir, "train")
