"""Each side of the package imports only what its process has.

The server side runs in the Jupyter server (SWAN: no TensorFlow there), the worker is the
only code that imports TensorFlow, and the client side runs in a notebook kernel, a script
or a grid job with neither Tornado nor jupyter_server. The scoring side runs in the kernel
(its drivers) and on Dask/Spark workers (``scoring/runtime.py``, which imports TensorFlow
lazily, on a worker, and is the only scoring module that may). Checked twice: statically (every
import statement of every file, lazy ones included) and by importing each side in a fresh
interpreter and looking at ``sys.modules``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tfaas_jupyter"

#: side -> (its folder, top-level modules it must never import, package sides it must not)
RULES: dict[str, tuple[Path, set[str], set[str]]] = {
    "server": (PACKAGE / "server", {"tensorflow", "keras", "IPython", "ipywidgets"},
               {"client", "worker.main", "worker.loaders"}),
    "worker": (PACKAGE / "worker", {"tornado", "jupyter_server", "IPython", "ipywidgets"},
               {"server", "client", "handlers"}),
    "client": (PACKAGE / "client", {"tornado", "jupyter_server", "tensorflow", "keras"},
               {"server", "worker", "handlers"}),
    "handlers": (ROOT / "handlers", {"tensorflow", "keras", "IPython", "ipywidgets"},
                 {"client", "worker"}),
    # server.shaping (pure numpy) is the one server module it uses: the same cut of rows
    # into inputs as the server's; the drivers run beside the client, in the kernel
    "scoring": (PACKAGE / "scoring", {"tornado", "jupyter_server", "IPython", "ipywidgets",
                                      "keras"},
                {"handlers", "worker.main", "worker.loaders", "server.app",
                 "server.service", "server.supervisor", "server.repository"}),
}

#: The one scoring module that runs on an engine's workers and may import TensorFlow.
SCORING_RUNTIME = PACKAGE / "scoring" / "runtime.py"


def _package_of(path: Path) -> str:
    """The dotted package a source file belongs to (``handlers`` is mounted as
    ``tfaas_jupyter.handlers``)."""
    if path.is_relative_to(ROOT / "handlers"):
        return "tfaas_jupyter.handlers"
    return ".".join(("tfaas_jupyter", *path.relative_to(PACKAGE).parent.parts))


def _imports(path: Path, package: str) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names += [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif node.module:
                names.append(node.module)
    return names


@pytest.mark.parametrize("side", sorted(RULES))
def test_each_side_imports_only_what_its_process_has(side: str) -> None:
    folder, banned_modules, banned_sides = RULES[side]
    bad = []
    for path in sorted(folder.rglob("*.py")):
        for name in _imports(path, _package_of(path)):
            top = name.split(".")[0]
            inner = name[len("tfaas_jupyter."):] if name.startswith("tfaas_jupyter.") else ""
            if top in banned_modules or any(
                inner == s or inner.startswith(s + ".") for s in banned_sides
            ):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    # The service and everything below it never import the HTTP layer; only the
    # extension app (the wiring) mounts it.
    if side == "server":
        bad += [
            f"{path.relative_to(ROOT)} imports {name}"
            for path in sorted(folder.rglob("*.py")) if path.name != "app.py"
            for name in _imports(path, _package_of(path))
            if name.startswith("tfaas_jupyter.handlers")
        ]
    assert not bad, "\n".join(bad)


def test_only_the_scoring_runtime_imports_tensorflow_and_only_lazily() -> None:
    bad = []
    for path in sorted((PACKAGE / "scoring").glob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if not any(n.split(".")[0] == "tensorflow" for n in names):
                continue
            if path != SCORING_RUNTIME:
                bad.append(f"{path.relative_to(ROOT)} imports tensorflow")
            elif id(node) in top_level:
                bad.append(f"{path.relative_to(ROOT)} imports tensorflow at import time")
    assert not bad, "\n".join(bad)


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def _tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("code", [
    "from tfaas_jupyter.client import TFaaSClient\n"
    "import tfaas_jupyter.client.cli, tfaas_jupyter.client.discovery\n"
    "import tfaas_jupyter.client.magics",
    # the scoring drivers, and the worker-side runtime until a worker first scores
    "import tfaas_jupyter.scoring.score, tfaas_jupyter.scoring.local\n"
    "import tfaas_jupyter.scoring.dask_engine, tfaas_jupyter.scoring.spark_engine\n"
    "import tfaas_jupyter.scoring.runtime",
], ids=["client", "scoring"])
def test_the_client_imports_neither_tornado_nor_jupyter_server_nor_tensorflow(code: str) -> None:
    loaded = _tops(_loaded_after(code))
    assert not loaded & {"tornado", "jupyter_server", "tensorflow", "keras"}, loaded


def test_the_server_side_never_imports_tensorflow() -> None:
    loaded = _loaded_after(
        "import tfaas_jupyter, tfaas_jupyter.handlers\n"
        "from tfaas_jupyter.server.app import TFaaSApp\n"
        "import tfaas_jupyter.server.service, tfaas_jupyter.server.supervisor"
    )
    assert not _tops(loaded) & {"tensorflow", "keras"}
    assert not any(m.startswith("tfaas_jupyter.client") for m in loaded)


def test_no_import_cycles_between_modules() -> None:
    """The package's own import graph (lazy imports included) has no cycle."""
    graph: dict[str, set[str]] = {}
    files = {**{p: "tfaas_jupyter" for p in [PACKAGE / "__init__.py"]}}
    for sub in ("server", "worker", "client", "scoring"):
        files.update({p: _package_of(p) for p in (PACKAGE / sub).rglob("*.py")})
    files.update({p: "tfaas_jupyter.handlers" for p in (ROOT / "handlers").glob("*.py")})
    modules = {}
    for path, package in files.items():
        name = package if path.name == "__init__.py" else f"{package}.{path.stem}"
        modules[name] = (path, package)
    for name, (path, package) in modules.items():
        graph[name] = {m for m in _imports(path, package) if m in modules and m != name}
    # a package's __init__ importing its own modules is how packages work, not a cycle
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".")
                                                      and path_is_init(modules[name][0]))}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def path_is_init(path: Path) -> bool:
    return path.name == "__init__.py"


def _sources(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def test_request_data_travels_as_arguments_not_in_context_variables() -> None:
    """No context variable in the server or the HTTP layer: a request's key grant, its
    ``Server-Timing`` stages, the model's time and a cold start are arguments and return
    values, which a reader can follow from the handler to the worker and back."""
    bad = []
    for path in _sources(PACKAGE / "server", ROOT / "handlers"):
        if any(name == "contextvars" or name.startswith("contextvars.")
               for name in _imports(path, _package_of(path))):
            bad.append(f"{path.relative_to(ROOT)} imports contextvars")
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("ContextVar", "copy_context"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.attr}")
            if isinstance(node, ast.Name) and node.id in ("ContextVar", "copy_context"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.id}")
    assert not bad, "\n".join(bad)


def test_the_http_layer_imports_nothing_from_the_worker_supervision() -> None:
    """Handlers reach the model worker only through the service: nothing of how the
    worker is launched, supervised or spoken to is theirs."""
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _sources(ROOT / "handlers")
        for name in _imports(path, "tfaas_jupyter.handlers")
        if any(name == f"tfaas_jupyter.server.{m}" or name.startswith(f"tfaas_jupyter.server.{m}.")
               for m in ("supervisor", "launch", "workerproc", "operations"))
    ]
    assert not bad, "\n".join(bad)


def test_each_protocol_is_an_adapter_beside_the_others() -> None:
    """The wire protocols live side by side in ``server/protocols/``, each over the
    protocol-neutral core; the core, the catalogue and the upload service know none."""
    protocols = PACKAGE / "server" / "protocols"
    assert {p.stem for p in protocols.glob("*.py")} >= {"original", "v2", "tfserving"}
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((PACKAGE / "server").glob("*.py"))
        for name in _imports(path, "tfaas_jupyter.server")
        if name.startswith("tfaas_jupyter.server.protocols")
    ]
    assert not bad, "\n".join(bad)


def test_no_server_module_is_longer_than_500_lines() -> None:
    """Small modules with one job: the server side keeps each under 500 lines."""
    long = [f"{p.relative_to(ROOT)}: {n} lines"
            for p in _sources(PACKAGE / "server")
            if (n := len(p.read_text("utf-8").splitlines())) > 500]
    assert not long, "\n".join(long)
