"""Errors the core raises; each carries the HTTP status the API answers with.

The core knows nothing of Tornado: the handlers turn a :class:`TFaaSError` into a
JSON ``{"error": message}`` body with ``status``. Errors of the model worker carry an
:class:`ErrorKind` instead, and :data:`STATUS_OF_KIND` is the one place that says
which HTTP status each kind gets.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from ..worker.wire import ErrorKind

__all__ = [
    "ErrorKind",
    "STATUS_OF_KIND",
    "TFaaSError",
    "BadRequest",
    "NotFound",
    "PayloadTooLarge",
    "Unavailable",
    "Unloadable",
    "WorkerError",
    "of_model",
    "WorkerUnavailable",
    "WorkerCrashed",
    "WorkerTimeout",
    "ModelError",
    "ModelTooBig",
]


class TFaaSError(Exception):
    """A problem the client can be told about, with its HTTP status."""

    status = 400
    #: The existing model the failed request was for, when there is one (for statistics).
    model: str | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(TFaaSError):
    status = 400


class Forbidden(TFaaSError):
    status = 403


class NotFound(TFaaSError):
    status = 404


class PayloadTooLarge(TFaaSError):
    status = 413


class Unavailable(TFaaSError):
    status = 503


#: The HTTP status of each kind of model worker error.
STATUS_OF_KIND: dict[ErrorKind, int] = {
    ErrorKind.BAD_INPUT: 400,
    ErrorKind.MODEL: 500,  # with the model's own message
    ErrorKind.LOAD: 409,  # a stored version the worker cannot load: delete or replace it
    ErrorKind.OUT_OF_MEMORY: 507,
    ErrorKind.NOT_LOADED: 503,  # only seen if a retried load is evicted again at once
    ErrorKind.RESTART: 503,  # only seen if a new worker is over its budget at once
    ErrorKind.TIMEOUT: 504,
    ErrorKind.UNAVAILABLE: 503,
}


class WorkerError(TFaaSError):
    """The model worker could not answer a request; ``kind`` says why."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, message: str, kind: ErrorKind | str | None = None) -> None:
        if kind is not None:
            try:
                self.kind = ErrorKind(kind)
            except ValueError:  # a newer worker's kind: the model failed, as far as we know
                self.kind = ErrorKind.MODEL
        super().__init__(message, STATUS_OF_KIND[self.kind])


class Unloadable(WorkerError):
    """A stored model version whose files the worker cannot load (a folder copied in by
    hand, a file damaged on disk): the repository's state conflicts with serving it, so
    409, naming the version and what to do. A model that loads and then fails while
    running is a 500 (:attr:`ErrorKind.MODEL`)."""

    kind = ErrorKind.LOAD

    def __init__(self, name: str, version: object, reason: str) -> None:
        super().__init__(
            f"model {name!r} version {version} cannot be loaded: {reason}; "
            "delete it or upload a new version"
        )


class WorkerUnavailable(WorkerError):
    """The worker cannot be started (e.g. no TensorFlow in that interpreter)."""

    kind = ErrorKind.UNAVAILABLE


class WorkerCrashed(WorkerError):
    """The worker process died while the request was in flight."""

    kind = ErrorKind.UNAVAILABLE


class WorkerTimeout(WorkerError):
    """The request exceeded the timeout; the worker was killed and will be restarted."""

    kind = ErrorKind.TIMEOUT


class ModelError(WorkerError):
    """The worker's error reply: the model could not be loaded or run, TensorFlow
    refused the input, or the model ran out of memory (``kind`` says which)."""

    kind = ErrorKind.MODEL


class ModelTooBig(WorkerError):
    """The model does not fit in the worker's memory limit, even alone (507)."""

    kind = ErrorKind.OUT_OF_MEMORY


@contextlib.contextmanager
def of_model(name: str) -> Iterator[None]:
    """Tag every :class:`TFaaSError` raised inside with the model ``name`` (for the
    statistics and the log): the one place errors learn their model."""
    try:
        yield
    except TFaaSError as exc:
        exc.model = name
        raise
