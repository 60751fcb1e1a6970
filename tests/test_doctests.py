"""The runnable examples in the package's docstrings, run against the installed ``boucle`` modules.

Collected here rather than with ``--doctest-modules``: pytest would import ``flows/x.py`` a second
time as ``flows.x``, beside the ``boucle.flows.x`` the code itself imports.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("config", "detectors", "flows", "operators", "schemas", "sinks", "sources")


def _modules() -> list[str]:
    # `boucle` is a namespace package (an editable install maps its sub-packages one by one),
    # so walk each sub-package rather than `boucle.__path__`.
    names = []
    for package in PACKAGES:
        root = importlib.import_module(f"boucle.{package}")
        names.append(root.__name__)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_module_is_found():
    assert "boucle.flows.cli.app" in MODULES and "boucle.sinks.clickhouse.schema" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
