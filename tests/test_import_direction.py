"""The import direction of docs/ARCHITECTURE.md ("Import rules") holds: experiments -> (alignment,
data_pipelines), never back; inside experiments/, entry points -> workflows/search -> training ->
evaluation -> reports/runtime, never back, and nothing below the entry points imports an entry point.

Also: only the entry points and experiments/cli define absl flags; every top-level experiments module is
a short entry point. Parsed with ast: a violation fails without running code.
And the accelerator benchmark imports no data stack: GPU machines may have jax, flax and optax but not
TensorFlow, TFDS, librosa or gensim.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The installed library never reaches the harness, the studies or the test material (not installed).
FORBIDDEN = {
    "alignment": {"data_pipelines", "experiments", "benchmarks", "studies", "fixtures"},
    "data_pipelines": {"experiments", "benchmarks", "studies", "fixtures"},
    "experiments": {"benchmarks", "studies", "fixtures"},
    "fixtures": {"experiments", "benchmarks", "studies"},
    "benchmarks": {"studies", "fixtures"},
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


# Inside experiments/: what each subpackage must not import (an entry point is any top-level module).
EXPERIMENTS_FORBIDDEN = {
    "runtime": {"cli", "training", "evaluation", "reports", "search", "workflows"},
    "evaluation": {"cli", "training", "search", "workflows"},
    "reports": {"cli", "training", "search", "workflows"},
    "training": {"cli", "search", "workflows"},
    "search": {"cli", "workflows"},
    "media": {"cli", "training", "workflows", "bundle"},
    "bundle": {"cli", "training", "search", "workflows", "media"},
    "workflows": {"cli"},
    "cli": {"training", "evaluation", "reports", "search", "workflows"},
    "configs": {"cli", "runtime", "training", "evaluation", "reports", "search", "workflows"},
}
ENTRY_POINT_LINES = 60


def _experiments_imports(tree: ast.AST) -> set[str]:
    """The experiments.<name> each import names: a subpackage or an entry point module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "experiments" and len(parts) > 1:
                names.add(parts[1])
    return names


def _entry_points() -> list[pathlib.Path]:
    return sorted(p for p in (ROOT / "experiments").glob("*.py") if p.name != "__init__.py")


def test_experiments_layers_import_downwards_only():
    entry_points = {path.stem for path in _entry_points()}
    violations = []
    for subpackage, forbidden in EXPERIMENTS_FORBIDDEN.items():
        for path in _python_files(f"experiments/{subpackage}"):
            imported = _experiments_imports(ast.parse(path.read_text(), str(path)))
            for bad in sorted(imported & (forbidden | entry_points)):
                violations.append(f"{path.relative_to(ROOT)} imports experiments.{bad}")
    assert not violations, "\n".join(violations)


def test_top_level_experiments_modules_are_short_entry_points():
    for path in _entry_points():
        source = path.read_text()
        assert 'if __name__ == "__main__":\n    launch.run(main)' in source, path.name
        assert len(source.splitlines()) <= ENTRY_POINT_LINES, path.name
    subpackages = {p.name for p in (ROOT / "experiments").iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(EXPERIMENTS_FORBIDDEN)


def test_only_entry_points_and_cli_define_flags_in_experiments():
    definers = {
        str(path.relative_to(ROOT))
        for path in _python_files("experiments")
        if _defines_flags(ast.parse(path.read_text(), str(path)))
    }
    library = {d for d in definers if d.count("/") > 1 and not d.startswith("experiments/cli/")}
    assert not library, f"library modules define flags: {sorted(library)}"
    assert "experiments/cli/launch.py" in definers


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
    for package in ("alignment", "data_pipelines", "benchmarks", "studies", "fixtures"):
        for path in _python_files(package):
            if _defines_flags(ast.parse(path.read_text(), str(path))):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"absl flags defined outside experiments/: {offenders}"


def _calls(tree: ast.AST, module: str, names: set[str]) -> set[str]:
    """Which of `module`.<name>(...) calls the tree makes."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == module and node.func.attr in names:
                found.add(node.func.attr)
    return found


def test_one_training_loop_saves_checkpoints_and_watches_for_preemption():
    """Every trained model is a task of experiments/training/loop.py: no other training module opens a
    checkpoint manager or saves, and nothing else in experiments/ watches for preemption."""
    loop = ROOT / "experiments" / "training" / "loop.py"
    for path in _python_files("experiments"):
        tree = ast.parse(path.read_text())
        if path == loop:
            assert _calls(tree, "checkpointing", {"save", "make_manager"}) == {
                "save", "make_manager"}  # fmt: skip
            assert _calls(tree, "preemption", {"Watch"}) == {"Watch"}
            continue
        assert not _calls(tree, "preemption", {"Watch"}), path
        if path.parent.name == "training":
            assert not _calls(tree, "checkpointing", {"save", "make_manager"}), path


def test_checker_catches_a_violation(tmp_path):
    tree = ast.parse("from data_pipelines import audio\nflags.DEFINE_string('x', None, '')\n")
    assert "data_pipelines" in _imported_top_levels(tree)
    assert _defines_flags(tree)
    tree = ast.parse("from experiments import train\nfrom experiments.training.students import x\n")
    assert _experiments_imports(tree) == {"train", "training"}


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
