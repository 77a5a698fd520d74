"""Errors the core raises; each carries the HTTP status the API answers with.

The core knows nothing of Tornado: the handlers turn a :class:`TFaaSError` into a
JSON ``{"error": message}`` body with ``status``.
"""

from __future__ import annotations


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
