"""Trains the students (objective transfer | ranking | both) and resumes from the workdir's checkpoints.

    python -m experiments.train --config=experiments/configs/world.py --workdir=runs/world \
        --config.loss.objective=both --config.total_steps=2000

The data set must be built (python -m experiments.build_data) and, for transfer/both, a teacher trained
or imported (python -m experiments.train_teacher) into the same workdir or config.teacher.path.
"""

from experiments import launch, trainer


def main(argv):
    del argv
    launch.initialize()
    trainer.train(launch.CONFIG.value, launch.WORKDIR.value)


if __name__ == "__main__":
    launch.run(main)
