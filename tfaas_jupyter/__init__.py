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

import os as _os

try:
    from ._version import __version__ as __version__
except ImportError:  # a checkout that was never built: the build writes _version.py
    __version__ = "dev"

# The wheel installs the top-level handlers/ folder as tfaas_jupyter/handlers/ (hatch's
# ``sources`` in pyproject.toml); in a checkout, and so in an editable install, the
# package finds it beside itself.
_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "handlers")) and _os.path.isfile(
    _os.path.join(_checkout, "handlers", "__init__.py")
):
    __path__.append(_checkout)


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    from .server.app import TFaaSApp

    return [{"module": "tfaas_jupyter", "app": TFaaSApp}]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext tfaas_jupyter``: register the ``%tfaas`` magics."""
    from .client.magics import load_ipython_extension as _load

    _load(ipython)
