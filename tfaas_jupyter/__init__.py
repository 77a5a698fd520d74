"""TensorFlow as a Service inside the Jupyter server.

The package has three sides, one per process, and the folder says which:

- ``tfaas_jupyter.server``: runs in the Jupyter server (Tornado, no TensorFlow);
  ``tfaas_jupyter.handlers`` (the top-level ``handlers/`` folder) is its HTTP layer;
- ``tfaas_jupyter.worker``: the model worker process, the only code that imports
  TensorFlow;
- ``tfaas_jupyter.client``: plain Python for notebooks, scripts and grid jobs (client,
  CLI, discovery, ``%tfaas`` magics, widgets): no Tornado, no Jupyter server, no
  TensorFlow.

Importing this package imports none of them.
"""

from __future__ import annotations

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict]:
    from .server.app import TFaaSApp

    return [{"module": "tfaas_jupyter", "app": TFaaSApp}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext tfaas_jupyter``: register the ``%tfaas`` magics."""
    from .client.magics import load_ipython_extension as _load

    _load(ipython)
