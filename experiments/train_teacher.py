"""Trains, imports or restores the image teacher, and optionally writes its probabilities into the data set.

    # train on the data set's fine labels (the world's concept x variant classes):
    python -m experiments.train_teacher --config=world --workdir=runs/world
    # import torchvision's ImageNet AlexNet:
    python -m experiments.train_teacher --config=paper --workdir=runs/paper \
        --config.teacher.source=torchvision --config.teacher.path=/data/alexnet-owt-7be5be79.pth
    # then write teacher_probs beside the data set so student training never runs the teacher:
    ... --config.teacher.precompute=True

The teacher checkpoint goes to <workdir>/teacher (source=checkpoint reads config.teacher.path instead).
"""

from experiments.cli import launch
from experiments.training import teacher


def main(argv):
    del argv
    launch.initialize()
    teacher.run_teacher(launch.config(), launch.WORKDIR.value)


if __name__ == "__main__":
    launch.run(main)
