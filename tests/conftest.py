"""Every test sees 8 fake CPU devices: the flag must be set before jax is first imported."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """(data_dir, teacher_dir): the tiny config's world data set and a tiny trained teacher, built once
    per test process."""
    from tests import helpers

    return helpers.build_tiny_world(str(tmp_path_factory.mktemp("tiny_world")))
