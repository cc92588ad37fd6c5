"""setup.py and the requirement files agree: same runtime packages, pins inside setup.py's bounds, dev
tools kept out of the runtime set, accelerator extras at the locked jax version.

setup.py is parsed with ast (setup() never runs); nothing is installed or downloaded.
"""

import ast
import pathlib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup_lists(source: str) -> tuple[list[str], dict[str, list[str]]]:
    """(install_requires, extras_require) of the setup() call in setup.py's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            keywords = {k.arg: k.value for k in node.keywords}
            return (
                ast.literal_eval(keywords["install_requires"]),
                ast.literal_eval(keywords["extras_require"]),
            )
    raise AssertionError("setup.py has no setup() call")


def _requirements(name: str) -> list[Requirement]:
    """The requirements of a requirements file, without comments and `-r` includes."""
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _names(requirements) -> set[str]:
    """Canonical names of Requirements or requirement strings."""
    return {canonicalize_name(Requirement(str(r)).name) for r in requirements}


def _lock() -> dict[str, str]:
    pins = {}
    for requirement in _requirements("requirements-lock.txt"):
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"requirements-lock.txt: {requirement} is not an exact pin"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _bound_violations(
    install_requires: list[str], runtime: list[Requirement], lock: dict[str, str]
) -> list[str]:
    """Each pin (requirements.txt's exact pins, every locked version) outside setup.py's bounds."""
    violations = []
    pinned = {canonicalize_name(r.name): r for r in runtime}
    for line in install_requires:
        bound = Requirement(line)
        name = canonicalize_name(bound.name)
        if name not in lock:
            violations.append(f"{name}: not in requirements-lock.txt")
            continue
        if not bound.specifier.contains(lock[name], prereleases=True):
            violations.append(f"{name}: locked {lock[name]} outside setup.py's {bound.specifier}")
        pin = pinned.get(name)
        if pin is None:
            continue
        if not pin.specifier.contains(lock[name], prereleases=True):
            violations.append(f"{name}: locked {lock[name]} outside requirements.txt's {pin}")
        for spec in pin.specifier:
            if spec.operator == "==" and not bound.specifier.contains(spec.version, True):
                violations.append(f"{name}: requirements.txt's {spec} outside {bound.specifier}")
    return violations


@pytest.fixture(scope="module")
def setup_lists():
    return _setup_lists((ROOT / "setup.py").read_text())


def test_runtime_requirements_are_setups_install_requires(setup_lists):
    install_requires, _ = setup_lists
    assert _names(_requirements("requirements.txt")) == _names(install_requires)


def test_pins_satisfy_setup_bounds(setup_lists):
    install_requires, _ = setup_lists
    violations = _bound_violations(install_requires, _requirements("requirements.txt"), _lock())
    assert not violations, "\n".join(violations)


def test_bound_check_catches_a_pin_outside_the_bounds(setup_lists):
    install_requires, _ = setup_lists
    raised = [r if Requirement(r).name != "numpy" else "numpy>=3" for r in install_requires]
    assert raised != install_requires
    violations = _bound_violations(raised, _requirements("requirements.txt"), _lock())
    assert violations and all(v.startswith("numpy:") for v in violations)


def test_dev_tools_stay_out_of_the_runtime_set(setup_lists):
    install_requires, extras = setup_lists
    assert (ROOT / "requirements-dev.txt").read_text().splitlines()[0] == "-r requirements.txt"
    dev = _names(_requirements("requirements-dev.txt"))
    assert dev == _names(extras["test"])
    assert {"pytest", "ruff", "mypy", "hypothesis", "nbclient", "ipykernel"} <= dev
    assert not dev & _names(_requirements("requirements.txt"))
    assert not dev & _names(install_requires)


def test_lock_holds_every_runtime_and_dev_package():
    files = ("requirements.txt", "requirements-dev.txt")
    wanted = set().union(*(_names(_requirements(name)) for name in files))
    assert not wanted - set(_lock())


@pytest.mark.parametrize("extra", ["cuda12", "tpu"])
def test_accelerator_extras_pull_jax_at_the_locked_version(setup_lists, extra):
    _, extras = setup_lists
    assert extras[extra] == [f"jax[{extra}]=={_lock()['jax']}"]
