"""Builds the data set a config names into config.data.data_dir (offline; once).

python -m experiments.build_data --config=world
python -m experiments.build_data --config=own_data --config.data.source=/path/to/folder
"""

from absl import logging

from experiments.cli import launch
from experiments.runtime import datasets


def main(argv):
    del argv
    launch.initialize()
    builder = datasets.build(launch.config().data)
    logging.info("data: ready at %s", builder.data_dir)


if __name__ == "__main__":
    launch.run(main)
