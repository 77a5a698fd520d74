"""Test tiers: every test gets its markers from what it uses, so a new test is placed
without marking it by hand.

- ``server``: a Jupyter server with the extension (pytest-jupyter's in-process
  ``jp_serverapp``, or a ``jupyter server`` subprocess);
- ``browser``: Chromium driven by Playwright;
- ``hub``: a real JupyterHub;
- ``slow``: a subprocess server, a notebook run, a venv, a wheel, a C++ or npm build,
  a kernel interrupt (SIGINT to the test process, over minutes of cluster work),
  or a TensorFlow model (built in the test's process or a child Python, or uploaded:
  an upload starts the server's model worker, a process importing TensorFlow, seconds
  of CPU each time);
- ``unit``: none of these.

``scripts/test --fast`` runs the ``unit`` and in-process ``server`` tests that are not
``slow``, ``browser`` or ``hub`` (no model worker, no TensorFlow model). What a test
uses is read from its code: the names and strings
of its function, of the helpers (tests' own functions) it calls, and of its fixtures.
Loaded by tests/conftest.py.
"""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent

#: marker -> the names (functions, classes, modules, attributes) whose use puts a test in it
NAMES = {
    "hub": {"jupyterhub"},
    "browser": {"sync_playwright", "sync_api", "CHROMIUM"},
    "slow": {"jupyter_server", "ServerProcess", "NotebookClient", "SIGINT",
             # a TensorFlow model: built in the test process, or uploaded, which starts
             # the server's model worker (a process that imports TensorFlow)
             "tfmodels", "onnxmodels", "tensorflow", "tf", "keras", "ModelWorker",
             "upload", "upload_dir", "uploaded", "upload_bundle", "seed_upload_body"},
}
#: marker -> string constants (command words) whose use puts a test in it
WORDS = {"slow": {"venv", "wheel", "cmake", "jlpm", "make_seed_model"}}
#: marker -> text in a string constant (code a test runs in a child Python) that puts a
#: test in it: a child importing TensorFlow, or starting a model worker, which does
SNIPPETS = {"slow": ("import tensorflow", "import keras", "ModelWorker(")}
#: pytest-jupyter's in-process server
SERVER_FIXTURE = "jp_serverapp"


def _written_here(cls: type) -> bool:
    module = sys.modules.get(cls.__module__)
    source = getattr(module, "__file__", None)
    return bool(source) and Path(source).resolve().is_relative_to(TESTS)


def _own(obj: Any) -> types.FunctionType | None:
    """``obj`` as a function written under tests/ (unwrapped), else None."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    if not isinstance(obj, types.FunctionType):
        return None
    source = obj.__code__.co_filename
    return obj if Path(source).resolve().is_relative_to(TESTS) else None


def _code_uses(code: types.CodeType, scope: dict[str, Any], seen: set[int],
               found: set[str]) -> None:
    for const in code.co_consts:
        if isinstance(const, str):
            found.add(const)
        elif isinstance(const, types.CodeType):
            _code_uses(const, scope, seen, found)
    for name in code.co_names:
        found.add(name)
        target = scope.get(name)
        if inspect.isclass(target) and _written_here(target):
            for member in vars(target).values():
                _function_uses(member, seen, found)
        else:
            _function_uses(target, seen, found)


def _function_uses(obj: Any, seen: set[int], found: set[str]) -> None:
    func = _own(obj)
    if func is None or id(func) in seen:
        return
    seen.add(id(func))
    _code_uses(func.__code__, func.__globals__, seen, found)


def uses(item: pytest.Function) -> set[str]:
    """The names and strings a test's code, its own helpers and its fixtures refer to."""
    found: set[str] = set()
    seen: set[int] = set()
    _function_uses(item.function, seen, found)
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for fixturedef in defs:
            _function_uses(fixturedef.func, seen, found)
    return found


def tiers(item: pytest.Function) -> set[str]:
    used = uses(item)
    marks = {mark for mark, names in NAMES.items() if used & names}
    marks |= {mark for mark, words in WORDS.items() if used & words}
    marks |= {mark for mark, snippets in SNIPPETS.items()
              if any(snippet in text for text in used for snippet in snippets)}
    if SERVER_FIXTURE in item.fixturenames or "jupyter_server" in used or "hub" in marks:
        marks.add("server")
    return marks or {"unit"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function):
            for mark in sorted(tiers(item)):
                item.add_marker(mark)
