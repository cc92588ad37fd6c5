"""Trains, imports or restores the image teacher, and optionally writes its probabilities into the data set.

    # train on the data set's fine labels (the world's concept x variant classes):
    python -m experiments.train_teacher --config=experiments/configs/world.py --workdir=runs/world
    # import torchvision's ImageNet AlexNet:
    python -m experiments.train_teacher --config=experiments/configs/paper.py --workdir=runs/paper \
        --config.teacher.source=torchvision --config.teacher.path=/data/alexnet-owt-7be5be79.pth
    # then write teacher_probs beside the data set so student training never runs the teacher:
    ... --config.teacher.precompute=True

The teacher checkpoint goes to <workdir>/teacher (source=checkpoint reads config.teacher.path instead).
"""

import os
from typing import Any

import jax

from alignment import parallel
from alignment.models import create_teacher
from experiments import data, launch, teacher, teacher_import


def check_normalization(cfg: Any) -> None:
    """Refuses a torchvision import whose images would not get the ImageNet normalization it needs."""
    normalization = cfg.get("normalization", "symmetric")
    if cfg.source == "torchvision" and normalization != "imagenet":
        raise ValueError(
            f"config.teacher.normalization={normalization!r} with source=torchvision: set "
            "--config.teacher.normalization=imagenet (torchvision's weights expect ImageNet mean/std)"
        )


def main(argv):
    del argv
    launch.initialize()
    config, workdir = launch.CONFIG.value, launch.WORKDIR.value
    check_normalization(config.teacher)
    mesh = parallel.make_mesh()
    builder = data.build(config.data)
    config = data.resolve_config(config, builder)
    teacher.check_teacher_classes(config)
    directory = teacher.teacher_dir(config, workdir)
    source = config.teacher.source
    if source == "train":
        module, params, metrics = teacher.train_teacher(config, builder, mesh)
        print("teacher: " + " | ".join(f"{k} {v:.3f}" for k, v in metrics.items()), flush=True)
        teacher.save_teacher(directory, params, {"metrics": metrics})
    elif source == "torchvision":
        state = teacher_import.load_state_dict(config.teacher.path)
        module = create_teacher(config.teacher)
        params = jax.device_put(teacher_import.convert_alexnet(state), parallel.replicated(mesh))
        teacher.save_teacher(
            directory, params, {"imported_from": os.path.abspath(config.teacher.path)}
        )
    elif source == "checkpoint":
        module, params = teacher.restore_teacher(config, directory, mesh)
    else:
        raise ValueError(
            f"config.teacher.source={source!r}: expected train, torchvision or checkpoint"
        )
    print(f"teacher: checkpoint at {directory}", flush=True)
    if config.teacher.precompute:
        teacher.precompute_teacher_probs(module, params, builder, mesh)


if __name__ == "__main__":
    launch.run(main)
