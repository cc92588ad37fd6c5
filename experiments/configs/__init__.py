"""One config file per experiment: paper.py, world.py, own_data.py, tiny.py.

`--config` takes a file path or the name of one of these files (`--config=world`), resolved inside the
installed package, so the entry points find their configs from any working directory.
"""

from __future__ import annotations

import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
NAMES = ("paper", "world", "own_data", "tiny")


def config_path(name_or_path: str) -> str:
    """A config file path for a bare name ("world" -> <package>/experiments/configs/world.py); any other
    value (a path, with a "/" or ending in ".py", or with a ":" config-string suffix) is returned as is."""
    name = name_or_path.removesuffix(".py")
    if name in NAMES and "/" not in name_or_path and not os.path.exists(name_or_path):
        return os.path.join(CONFIG_DIR, f"{name}.py")
    return name_or_path
