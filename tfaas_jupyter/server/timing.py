"""Where one prediction's time went, for its ``Server-Timing`` response header.

The handler makes one :class:`Stages` per request and sets :data:`STAGES`; the
service stamps the model call's start and end (:meth:`TFaaS.run`), the batcher the
time a request waited and its worker round trip, and the worker reports the time
inside the model call. Plain ``perf_counter`` floats in slots: nothing is built per
request until the header is written.
"""

from __future__ import annotations

import contextvars

#: The stages, in the order the header lists them.
STAGE_NAMES = ("decode", "queue", "worker", "model", "encode")


class Stages:
    """The stamps of one request (``perf_counter`` seconds).

    * decode: from the handler's start (after authentication) to the model call:
      reading the body, finding the model, shaping and casting the inputs;
    * queue: waiting in the batcher for a free call slot;
    * worker: the round trip to the model worker (frame out, model, frame back);
    * model: inside the model call, measured by the worker (part of ``worker``);
    * encode: from the model call's return to the response's finish: checking and
      writing the outputs.
    """

    __slots__ = ("began", "run_start", "run_end", "queue", "worker", "model")

    def __init__(self, began: float) -> None:
        self.began = began
        self.run_start = 0.0
        self.run_end = 0.0
        self.queue = 0.0
        self.worker = 0.0
        self.model = 0.0

    def server_timing(self, finished: float) -> str | None:
        """The ``Server-Timing`` value (milliseconds), or None when no model ran."""
        if not self.run_end:
            return None
        return (f"decode;dur={(self.run_start - self.began) * 1000:.3f}, "
                f"queue;dur={self.queue * 1000:.3f}, "
                f"worker;dur={self.worker * 1000:.3f}, "
                f"model;dur={self.model * 1000:.3f}, "
                f"encode;dur={(finished - self.run_end) * 1000:.3f}")


#: The current request's stamps (None outside a tfaas handler, e.g. in tests).
STAGES: contextvars.ContextVar[Stages | None] = contextvars.ContextVar(
    "tfaas_stages", default=None
)

#: Seconds inside the model for the last worker call of this task (the worker's reply
#: says; 0.0 when it did not). Set by the supervisor, read by the batcher.
MODEL_SECONDS: contextvars.ContextVar[float] = contextvars.ContextVar(
    "tfaas_model_seconds", default=0.0
)
