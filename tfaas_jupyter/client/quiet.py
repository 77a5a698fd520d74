"""TensorFlow quiet in a kernel: ``%load_ext tfaas_jupyter`` calls :func:`quiet_tensorflow`.

A kernel's cell that imports TensorFlow (or Keras, which imports it) would show a red
block of its C++ chatter: absl's "All log messages before absl::InitializeLog() is
called…", oneDNN's notice, the CPU feature guard, CUDA's absence on a CPU machine. The
libraries write it to file descriptor 2 while they load, before any log level applies,
so ``TF_CPP_MIN_LOG_LEVEL`` alone cannot keep it out. Two things do:

- the environment, set before TensorFlow loads (unless the user set it): C++ logs
  below FATAL off (``TF_CPP_MIN_LOG_LEVEL=3``; Python errors still raise and show);
- an import hook for ``tensorflow``: while it loads, file descriptor 2 goes to a
  temporary file; afterwards every line that is not chatter (:data:`..tfnoise.TF_NOISE`)
  is written to ``sys.stderr`` as it came.

This module never imports TensorFlow.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
import threading
from types import ModuleType
from typing import Any, Sequence

from ..tfnoise import TF_NOISE

__all__ = ["QUIET_ENVIRONMENT", "quiet_tensorflow"]

#: Set before TensorFlow loads, where the user has not set them.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # C++ INFO, WARNING and ERROR logs (FATAL still shows)
    "GRPC_VERBOSITY": "ERROR",
}

#: The top-level packages whose loading is kept quiet.
QUIET_PACKAGES = frozenset({"tensorflow"})


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


class _QuietLoader(importlib.abc.Loader):
    """The package's own loader, with fd 2 caught while its module runs."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # resources, get_source...: as the original
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        _flush_std()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to keep quiet
            self._loader.exec_module(module)
            return
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                _flush_std()
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                text = caught.read().decode("utf-8", "replace")
                kept = [line for line in text.splitlines()
                        if line.strip() and not TF_NOISE.match(line)]
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds :data:`QUIET_PACKAGES` as the other finders do, with a quiet loader."""

    def __init__(self) -> None:
        self._finding = threading.local()

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in QUIET_PACKAGES or getattr(self._finding, "busy", False):
            return None
        self._finding.busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding.busy = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow(environ: Any = None) -> None:
    """Set the quiet environment (where unset) and, unless TensorFlow is loaded already,
    hook its import; a second call does nothing more."""
    environ = os.environ if environ is None else environ
    for name, value in QUIET_ENVIRONMENT.items():
        if not environ.get(name):  # unset or empty: the user chose nothing
            environ[name] = value
    if not QUIET_PACKAGES.isdisjoint(sys.modules):
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
