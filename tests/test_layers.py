"""The layers point down: read every module's imports (including those inside functions).

config is the ground floor (pydantic and the standard library); detectors know numbers (river,
numpy); operators, sources and sinks never reach up into flows; no two modules import each other,
directly or around a circle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "detectors", "flows", "operators", "schemas", "sinks", "sources")
THIRD_PARTY = {
    "config": {"pydantic", "pydantic_settings", "tomli", "babel"},  # babel: numbers and dates per language
    "detectors": {"river", "numpy"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("boucle", *parts))


MODULES = {
    _module_name(path): path
    for package in PACKAGES
    for path in sorted((REPO / package).rglob("*.py"))
}


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of everything ``name`` imports, relative imports resolved."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            # `from boucle.x import y` may name a module y: count it as an import of x.y too.
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_package_is_read():
    assert "boucle.flows.cli.app" in MODULES and "boucle.config.settings" in MODULES


@pytest.mark.parametrize("layer", ["config", "detectors", "operators", "sinks", "sources", "schemas"])
def test_lower_layers_never_import_flows(layer):
    offenders = {
        name: sorted(i for i in imports if i == "boucle.flows" or i.startswith("boucle.flows."))
        for name, imports in IMPORTS.items()
        if name.startswith(f"boucle.{layer}")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("layer", sorted(THIRD_PARTY))
def test_ground_floors_import_only_their_libraries(layer):
    allowed = THIRD_PARTY[layer] | set(sys.stdlib_module_names) | {"__future__"}
    own = ("boucle.config",) if layer == "config" else ("boucle.config", f"boucle.{layer}")
    offenders = {}
    for name, imports in IMPORTS.items():
        if not name.startswith(f"boucle.{layer}"):
            continue
        bad = sorted(i for i in imports if i.split(".")[0] not in allowed and not i.startswith(own))
        if bad:
            offenders[name] = bad
    assert offenders == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    # A package's __init__ re-exporting its modules is not a circle of the modules themselves.
    graph = {
        name: {
            i for i in imports
            if i in MODULES and i != name and not (MODULES[i].name == "__init__.py" and name.startswith(i + "."))
        }
        for name, imports in IMPORTS.items()
    }
    assert _cycles(graph) == []
