"""The main job (`make demo`): build the bundled world, train the teacher, train the students with each
objective, evaluate them against the baselines and raw-input probes, and write <workdir>/report.md.

    python -m experiments.demo --config=world --workdir=runs/demo
"""

from experiments.cli import launch
from experiments.workflows.demo import run_demo


def main(argv):
    del argv
    launch.initialize()
    print(run_demo(launch.config(), launch.WORKDIR.value, launch.config_file()))


if __name__ == "__main__":
    launch.run(main)
