"""The import direction of DESIGN.md holds: experiments -> (alignment, data_pipelines), never back.

Also: only experiments/ defines absl flags. Parsed with ast: a violation fails without running code.
And the accelerator benchmark imports no data stack: GPU machines may have jax, flax and optax but not
TensorFlow, TFDS, librosa or gensim.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "alignment": {"data_pipelines", "experiments", "benchmarks"},
    "data_pipelines": {"experiments", "benchmarks"},
}
FLAG_DEFINERS = {"DEFINE_", "DEFINE_config_file", "DEFINE_config_dict"}


def _python_files(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_top_levels(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _defines_flags(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if any(name.startswith(prefix) for prefix in FLAG_DEFINERS):
                return True
    return False


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_direction(package):
    violations = []
    for path in _python_files(package):
        imported = _imported_top_levels(ast.parse(path.read_text(), str(path)))
        for bad in sorted(imported & FORBIDDEN[package]):
            violations.append(f"{path.relative_to(ROOT)} imports {bad}")
    assert not violations, "\n".join(violations)


def test_only_experiments_define_flags():
    offenders = []
    for package in ("alignment", "data_pipelines", "benchmarks"):
        for path in _python_files(package):
            if _defines_flags(ast.parse(path.read_text(), str(path))):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"absl flags defined outside experiments/: {offenders}"


def test_checker_catches_a_violation(tmp_path):
    tree = ast.parse("from data_pipelines import audio\nflags.DEFINE_string('x', None, '')\n")
    assert "data_pipelines" in _imported_top_levels(tree)
    assert _defines_flags(tree)


# Packages of the data stack and the reports that a machine running only the train step may lack.
DATA_STACK = (
    "tensorflow",
    "tensorflow_datasets",
    "librosa",
    "gensim",
    "matplotlib",
    "sklearn",
    "PIL",
)


def test_accelerator_benchmark_imports_no_data_stack():
    code = (
        "import sys, benchmarks.accelerator, experiments.configs.paper\n"
        f"print(sorted(set({DATA_STACK!r}) & {{m.split('.')[0] for m in sys.modules}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
