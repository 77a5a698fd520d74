"""TensorFlow as a Service inside the Jupyter server.

Importing this package never imports TensorFlow: TensorFlow runs in a separate
model worker process (see :mod:`tfaas_jupyter.supervisor`).
"""

from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    from .app import TFaaSApp

    return [{"module": "tfaas_jupyter", "app": TFaaSApp}]


def load_ipython_extension(ipython) -> None:  # pragma: no cover - thin shim
    from .magics import load_ipython_extension as _load

    _load(ipython)
