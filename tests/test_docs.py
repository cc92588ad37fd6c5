"""The documentation names only what exists: every repository path, `python -m` module and `make` target
named in README.md, CONTRIBUTING.md and docs/ (docs/notes/ is history and is left as written), and every
`--config.X` flag is a field of the config its command uses.

Names are read from code: inline `code` spans and fenced blocks, plus markdown link targets. A flag's
config is the command's `--config=` (a name or a path); without one, the page's own config (PAGE_CONFIG),
else world, the entry points' default.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib
import re

import pytest

from experiments import configs

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    + [
        p
        for p in (ROOT / "docs").rglob("*.md")
        if "notes" not in p.relative_to(ROOT / "docs").parts
    ]
)
# A path is checked when it starts with one of the repository's own top-level entries.
TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"} - {
    "runs",
    "data",
}
FIRST_PARTY = {"alignment", "data_pipelines", "experiments", "benchmarks", "studies", "fixtures"}
PAGE_CONFIG = {"docs/own_data.md": "own_data", "docs/scale.md": "paper"}
DEFAULT_CONFIG = "world"
# Where a name holds a placeholder, the part before it must exist.
PLACEHOLDER = re.compile(r"[<*{$]|\bNAME\b|\bDATE\b")

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
MODULE = re.compile(r"python3? -m ([A-Za-z_][\w.]*)")
MAKE = re.compile(r"(?<![\w-])make ([a-z][\w-]*)(?![\w=-])")
FLAG = re.compile(r"--config\.([A-Za-z_][\w.]*)")
CONFIG_ARG = re.compile(r"--config=(\S+)")
# A bare file name is a repository path only when it names one of the top level's own kinds of file.
ROOT_FILE = re.compile(r"requirements[\w-]*\.txt|setup\.py|pyproject\.toml|Makefile|[A-Z]+\.md")
PATH = re.compile(r"(?<![\w./-])((?:\.ci|[A-Za-z_][\w-]*(?:\.[\w]+)?)(?:/[\w.*<>{}$-]*)*)")


def _code(text: str) -> list[str]:
    """The page's code: each fenced block's commands (continuation lines joined) and each inline span."""
    chunks = []
    for block in FENCE.findall(text):
        chunks.extend(block.replace("\\\n", " ").splitlines())
    outside = FENCE.sub("", text)
    chunks.extend(SPAN.findall(outside))
    return chunks


def _names(page: pathlib.Path) -> dict[str, set[str]]:
    text = page.read_text(encoding="utf-8")
    code = _code(text)
    found: dict[str, set[str]] = {"paths": set(), "links": set(), "modules": set(), "make": set()}
    for chunk in code:
        found["modules"].update(m.rstrip(".") for m in MODULE.findall(chunk))
        found["make"].update(MAKE.findall(chunk))
        for token in chunk.replace("=", " ").replace(",", " ").split():
            match = PATH.fullmatch(token.strip("()[]:;'\""))
            if not match:
                continue
            name = match.group(1)
            if ("/" in name and name.split("/")[0] in TOP_LEVEL) or ROOT_FILE.fullmatch(name):
                found["paths"].add(name)
    for target in LINK.findall(text):
        if "://" not in target:
            found["links"].add(target)
    return found


def _exists(path: pathlib.Path, name: str) -> bool:
    cut = PLACEHOLDER.search(name)
    if cut:
        name = name[: cut.start()].rsplit("/", 1)[0]
    return (path / name.rstrip("/")).exists()


def _module_exists(module: str) -> bool:
    if module.split(".")[0] not in FIRST_PARTY:
        return True  # pip, venv, pytest: not ours
    return importlib.util.find_spec(module) is not None


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))


@functools.cache
def _config(name: str):
    spec = importlib.util.spec_from_file_location(
        f"docs_config_{pathlib.Path(name).stem}", configs.config_path(name)
    )
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _has_field(config, dotted: str) -> bool:
    node = config
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError):
            return False
    return True


def _flag_uses(page: pathlib.Path) -> list[tuple[str, str]]:
    """(config name or path, field) for each --config.X in the page's code."""
    default = PAGE_CONFIG.get(str(page.relative_to(ROOT)), DEFAULT_CONFIG)
    uses = []
    for chunk in _code(page.read_text(encoding="utf-8")):
        named = CONFIG_ARG.search(chunk)
        config = named.group(1).strip("`'\"") if named else default
        for field in FLAG.findall(chunk):
            if not field.isupper():  # --config.X: a placeholder
                uses.append((config, field.rstrip(".")))
    return uses


PAGES = [pytest.param(page, id=str(page.relative_to(ROOT))) for page in DOCS]


def test_the_pages_are_read():
    names = {str(p.relative_to(ROOT)) for p in DOCS}
    assert {"README.md", "CONTRIBUTING.md", "docs/ARCHITECTURE.md"} <= names


@pytest.mark.parametrize("page", PAGES)
def test_named_paths_exist(page):
    found = _names(page)
    missing = [name for name in sorted(found["paths"]) if not _exists(ROOT, name)]
    missing += [
        name for name in sorted(found["links"]) if not _exists(page.parent, name.split("#")[0])
    ]
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_named_modules_exist(page):
    missing = [m for m in sorted(_names(page)["modules"]) if not _module_exists(m)]
    assert not missing, f"{page.name} names modules that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_named_make_targets_exist(page):
    missing = sorted(_names(page)["make"] - _make_targets())
    assert not missing, f"{page.name} names make targets the Makefile lacks: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_config_flags_are_fields(page):
    unknown = []
    for config, field in _flag_uses(page):
        if config.endswith(".json"):
            continue  # a run's saved config: any field of the file it was made from
        if not _has_field(_config(config), field):
            unknown.append(f"--config.{field} (config {config})")
    assert not unknown, f"{page.name} names config fields that do not exist: {sorted(set(unknown))}"
