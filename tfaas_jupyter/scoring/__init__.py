"""Scoring a whole dataset with one model version, on the engine the data lives on.

Two sides, by where the code runs:

* the drivers (:mod:`.score`, :mod:`.engines`, :mod:`.inputs`, :mod:`.outputs`) run in
  the notebook kernel or a script: plain Python, no TensorFlow. They fetch the model
  from the server once, ship it to the engine once and build the engine's work;
* :mod:`.runtime` runs where the rows are: the kernel itself (engine ``local``) or each
  Dask / Spark worker process. It is the one module here that imports TensorFlow, lazily,
  when a worker first scores; it never calls the notebook server.
"""

from .inputs import RootFiles
from .shipped import ShippedModel

__all__ = ["RootFiles", "ShippedModel"]
