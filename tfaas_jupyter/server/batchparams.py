"""A model's own batching settings in its params.json, checked at upload.

Besides the server's (``TFaaSApp.batching``, ``max_batch_size``,
``max_queue_delay_us``, ``max_in_flight``) a model may set ``"batching": false``
(off: each request is its own worker call), ``"max_batch_size"`` (most rows in one
stacked call), ``"batch_timeout_ms"`` (how long a non-full batch may wait for more
requests, in milliseconds; ``"max_queue_delay_us"`` says the same in microseconds)
and ``"max_in_flight"``. An upload whose values the batcher could not use is refused
with a 400 naming the setting, rather than served with the value ignored.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import BadRequest

#: The longest a batch may wait for more requests (a minute: longer is a mistake).
MAX_BATCH_TIMEOUT_MS = 60_000.0

#: setting -> (smallest value, whether a fraction is allowed)
_NUMBERS: dict[str, tuple[float, bool]] = {
    "max_batch_size": (1, False),
    "max_in_flight": (1, False),
    "max_queue_delay_us": (0, False),
    "batch_timeout_ms": (0, True),
}


def check_batching_params(params: Mapping[str, Any]) -> None:
    """Raise :class:`BadRequest` naming the first batching setting of ``params`` that is
    not usable."""
    if "batching" in params and not isinstance(params["batching"], bool):
        raise BadRequest(f"params.json 'batching' must be true or false, "
                         f"not {params['batching']!r}")
    for key, (least, fraction) in _NUMBERS.items():
        if key not in params:
            continue
        value = params[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (not fraction and value != int(value)) or value < least:
            kind = "a number" if fraction else "an integer"
            raise BadRequest(f"params.json '{key}' must be {kind} >= {least:g}, "
                             f"not {value!r}")
    if "batch_timeout_ms" in params:
        if params["batch_timeout_ms"] > MAX_BATCH_TIMEOUT_MS:
            raise BadRequest(f"params.json 'batch_timeout_ms' must be at most "
                             f"{MAX_BATCH_TIMEOUT_MS:g} ms")
        if "max_queue_delay_us" in params:
            raise BadRequest("params.json gives both 'batch_timeout_ms' and "
                             "'max_queue_delay_us': give one")


def queue_delay_us(params: Mapping[str, Any]) -> Any:
    """The model's batch timeout in microseconds, from ``batch_timeout_ms`` or
    ``max_queue_delay_us`` (None: the server's)."""
    ms = params.get("batch_timeout_ms")
    if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0:
        return round(ms * 1000)
    return params.get("max_queue_delay_us")
