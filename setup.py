"""See, Hear, and Read: deep aligned representations of images, sounds and sentences in JAX/Flax.

install_requires names the runtime packages of requirements.txt, with lower bounds that its pins and
requirements-lock.txt satisfy; the `test` extra holds requirements-dev.txt's tools. The `cuda12`
and `tpu` extras add jax's own accelerator extras at the locked jax version:
    pip install -e ".[cuda12]"    # one or more NVIDIA GPUs
    pip install -e ".[tpu]"       # a TPU VM or pod slice
tests/test_packaging.py keeps these lists and the requirement files in agreement.
"""

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
        "google-cloud-storage>=3.17",
        "tensorflow-cpu>=2.21",
        "tensorflow-datasets>=4.9.10",
        "apache-beam>=2.77",
        "zstandard>=0.25",
        "importlib_resources",
        "librosa>=0.11",
        "soundfile",
        "gensim>=4.4",
        "faiss-cpu>=1.15",
        "absl-py",
        "ml-collections",
        "numpy>=2.4",
        "scipy",
        "pillow",
        "safetensors>=0.8",
        "matplotlib",
        "tensorboardX",
        "tensorboard",  # only the viewer of the event files; unbounded so it never moves Colab's own
    ],
    extras_require={
        "cuda12": ["jax[cuda12]==0.10.2"],
        "tpu": ["jax[tpu]==0.10.2"],
        "test": [
            "pytest",
            "pytest-xdist",
            "hypothesis",
            "nbformat",
            "nbclient",
            "ipykernel",
            "ruff",
            "mypy",
            "scikit-learn",
            "gcp-storage-emulator",
            "cryptography",
        ],
        "torch": ["torch"],
    },
)
