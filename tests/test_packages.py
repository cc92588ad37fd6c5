"""The three packages import, and the test process sees the 8 fake devices."""

import importlib

import jax
import pytest


@pytest.mark.parametrize("name", ["alignment", "data_pipelines", "experiments"])
def test_package_imports(name):
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring"


def test_eight_fake_devices():
    assert jax.device_count() == 8
    assert jax.devices()[0].platform == "cpu"
