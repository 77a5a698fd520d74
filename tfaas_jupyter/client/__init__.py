"""The client side: plain Python for notebooks, scripts and grid jobs.

The HTTP client, the ``tfaas`` command, server discovery, the ``%tfaas`` magics and the
model browser widget. Nothing here imports Tornado, jupyter_server or TensorFlow.
"""

from __future__ import annotations

from .api import TFaaSClient, TFaaSClientError

__all__ = ["TFaaSClient", "TFaaSClientError"]
