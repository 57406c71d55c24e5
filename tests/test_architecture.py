"""The package's shape: the import-linter contracts in pyproject.toml hold, no two modules import
each other in a circle (lazy and TYPE_CHECKING imports count), no module uses another's private
names, and lazy imports of segjob's own modules stay in the CLI (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segjob"
# Commands import the library inside their functions so `segjob --help` and `runs list` start
# fast (tests/test_startup.py); the package itself loads its Python API (segjob.api) on first
# use for the same reason; nowhere else needs a lazy import of segjob's own modules.
LAZY_IMPORTS_ALLOWED = {"segjob.cli.app", "segjob"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported segjob module
    names: tuple[str, ...]  # names taken from it (empty for `import x`)
    lazy: bool  # inside a function or under TYPE_CHECKING
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.startswith("segjob"):
                    for alias in child.names:
                        submodule = f"{child.module}.{alias.name}"
                        if submodule in MODULES:  # `from segjob.store import db`
                            found.append(Import(module, submodule, (), inner, child.lineno))
                        else:
                            found.append(Import(module, child.module, (alias.name,), inner, child.lineno))
            elif isinstance(child, ast.ImportFrom) and child.level:
                found.append(Import(module, "<relative>", (), inner, child.lineno))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("segjob"):
                        found.append(Import(module, alias.name, (), inner, child.lineno))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


ALL_IMPORTS = [found for module in sorted(MODULES) for found in imports_of(module)]


def test_import_linter_contracts_hold(capsys):
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    output = capsys.readouterr().out
    assert code == 0, output
    assert "0 broken" in output


def test_imports_are_absolute_and_name_real_modules():
    relative = [f"{i.module}:{i.line}" for i in ALL_IMPORTS if i.target == "<relative>"]
    unknown = [
        f"{i.module}:{i.line} {i.target}" for i in ALL_IMPORTS if i.target != "<relative>" and i.target not in MODULES
    ]
    assert relative == [] and unknown == []


def test_no_import_circles_between_modules():
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for i in ALL_IMPORTS:
        if i.target in MODULES and i.target != i.module and not _is_package_of(i.target, i.module):
            graph[i.module].add(i.target)
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                walk(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def _is_package_of(package: str, module: str) -> bool:
    """`segjob.cli` (its __init__) re-exports from `segjob.cli.app`: a package importing its own
    module, not a circle."""
    return module.startswith(package + ".") or package.startswith(module + ".")


def test_no_private_names_across_modules():
    crossing = [
        f"{i.module}:{i.line} imports {name} from {i.target}"
        for i in ALL_IMPORTS
        for name in i.names
        if name.startswith("_") and i.target != i.module
    ]
    attributes = []
    for module, path in MODULES.items():
        imported_modules = {i.target.rpartition(".")[2] for i in imports_of(module) if not i.names}
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported_modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                attributes.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert crossing == [] and attributes == []


@pytest.mark.parametrize("module", sorted(set(MODULES) - LAZY_IMPORTS_ALLOWED))
def test_lazy_imports_of_segjob_modules_only_in_the_cli(module):
    lazy = [f"{i.line}: {i.target}" for i in imports_of(module) if i.lazy]
    assert lazy == [], f"{module} imports segjob modules lazily; import them at the top (or explain in the CLI)"


def test_an_unmarked_test_cannot_start_a_segjob_or_python_process():
    """The guard in conftest.py that keeps `make test-fast` free of processes."""
    with pytest.raises(AssertionError, match="mark it @pytest.mark.slow"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with pytest.raises(AssertionError, match="mark it @pytest.mark.slow"):
        subprocess.run([str(Path(sys.executable).parent / "segjob"), "--help"], check=True)
    assert subprocess.run(["true"], check=True).returncode == 0  # other programs still run
