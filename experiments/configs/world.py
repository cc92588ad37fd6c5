"""The CPU default used by `make demo`: the bundled world, small towers, both losses.

python -m experiments.train --config=experiments/configs/world.py --workdir=runs/world
"""

import ml_collections

from experiments.configs.base import base_config


def get_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.lock()
    return config
