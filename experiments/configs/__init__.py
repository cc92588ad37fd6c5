"""One config file per experiment: paper.py, world.py, tiny.py."""
