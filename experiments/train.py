"""Trains the students (objective transfer | ranking | both) and resumes from the workdir's checkpoints.

    python -m experiments.train --config=world --workdir=runs/world \
        --config.loss.objective=both --config.total_steps=2000

The data set must be built (python -m experiments.build_data) and, for transfer/both, a teacher trained
or imported (python -m experiments.train_teacher) into the same workdir or config.teacher.path. The run's
config is saved as <workdir>/config.json: rerunning with --workdir alone resumes it, and evaluate,
retrieve and public_eval read it.
"""

from experiments.cli import launch
from experiments.training import students


def main(argv):
    del argv
    launch.initialize()
    students.train(launch.config(), launch.WORKDIR.value, config_file=launch.config_file())


if __name__ == "__main__":
    launch.run(main)
