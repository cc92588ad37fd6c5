"""See, Hear, and Read: deep aligned representations of images, sounds and sentences in JAX/Flax."""

import pathlib

from setuptools import find_packages, setup

setup(
    name="see-hear-read",
    version="0.1.0",
    description="One representation shared by images, sounds and sentences (Aytar et al., 2017).",
    long_description=pathlib.Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["alignment*", "data_pipelines*", "experiments*"]),
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12",
        "tensorflow-cpu>=2.21",
        "tensorflow-datasets>=4.9.10",
        "importlib_resources",
        "librosa>=0.11",
        "soundfile",
        "gensim>=4.4",
        "absl-py",
        "ml-collections",
        "numpy>=2.0",
        "scipy",
        "pillow",
        "matplotlib",
        "tensorboardX",
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-xdist",
            "hypothesis",
            "nbformat",
            "nbclient",
            "ipykernel",
            "ruff",
            "mypy",
        ],
        "torch": ["torch"],
    },
)
