"""Builds the data set a config names into config.data.data_dir (offline; once).

    python -m experiments.build_data --config=experiments/configs/world.py
    python -m experiments.build_data --config=experiments/configs/world.py \
        --config.data.builder=manifest --config.data.source=/path/to/folder
"""

from experiments import data, launch


def main(argv):
    del argv
    launch.initialize()
    builder = data.build(launch.CONFIG.value.data)
    print(f"data: ready at {builder.data_dir}")


if __name__ == "__main__":
    launch.run(main)
