"""Where one prediction's time went, for its ``Server-Timing`` response header.

Request data travels as values, never in context variables: the handler makes one
:class:`Stages` per request and hands it down with the call; the service stamps the
model call's start and end, the batcher the time a request waited and its worker
round trip, and the worker's answer (:class:`ModelAnswer`) carries the time inside
the model call and any cold start the call went through. Plain ``perf_counter``
floats in slots: nothing is built per request until the header is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The stages, in the order the header lists them.
STAGE_NAMES = ("decode", "queue", "worker", "model", "encode")


@dataclass(frozen=True)
class ColdStart:
    """What a request waited for before its model could run: a worker start (0 when
    the worker was running) and the model's load."""

    model: str
    start_seconds: float
    load_seconds: float

    @property
    def seconds(self) -> float:
        return self.start_seconds + self.load_seconds

    def server_timing(self) -> str:
        """A ``Server-Timing`` entry (milliseconds), e.g. ``cold-start;dur=1234.5;desc=...``."""
        desc = (f"worker start {self.start_seconds:.3f} s + " if self.start_seconds else "")
        desc += f"model load {self.load_seconds:.3f} s"
        return f'cold-start;dur={self.seconds * 1000:.1f};desc="{desc}"'

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model.split("@", 1)[0], "start_seconds": round(self.start_seconds, 4),
                "load_seconds": round(self.load_seconds, 4), "seconds": round(self.seconds, 4)}


@dataclass
class ModelAnswer:
    """The model worker's answer to one prediction: the outputs (one read-only array per
    output, in output order), the seconds inside the model call as the worker measured
    them, and the cold start the call had to wait for (None when the worker was up and
    held the model)."""

    outputs: list[np.ndarray]
    model_seconds: float = 0.0
    cold_start: ColdStart | None = None


class Stages:
    """The stamps of one request (``perf_counter`` seconds).

    * decode: from the handler's start (after authentication) to the model call:
      reading the body, finding the model, shaping and casting the inputs;
    * queue: waiting in the batcher for a free call slot;
    * worker: the round trip to the model worker (frame out, model, frame back);
    * model: inside the model call, measured by the worker (part of ``worker``);
    * encode: from the model call's return to the response's finish: checking and
      writing the outputs.

    ``cold_start`` is what the request waited for before its model could run, if any.
    """

    __slots__ = ("began", "run_start", "run_end", "queue", "worker", "model", "cold_start",
                 "caller")

    def __init__(self, began: float, caller: str | None = None) -> None:
        self.began = began
        #: who asked: the Jupyter user's name, or ``key:NAME`` (a TFaaS key), for capture
        self.caller = caller
        self.run_start = 0.0
        self.run_end = 0.0
        self.queue = 0.0
        self.worker = 0.0
        self.model = 0.0
        self.cold_start: ColdStart | None = None

    def add_call(self, worker_seconds: float, answer: ModelAnswer, queue_seconds: float = 0.0
                 ) -> None:
        """Count one worker call of this request: its round trip, the model's time in it,
        the time it queued for, and the cold start it went through."""
        self.queue += queue_seconds
        self.worker += worker_seconds
        self.model += answer.model_seconds
        if answer.cold_start is not None:
            self.cold_start = answer.cold_start

    def server_timing(self, finished: float) -> list[str]:
        """The ``Server-Timing`` values (milliseconds): the stages when a model ran, and
        the cold start when there was one."""
        values = []
        if self.run_end:
            values.append(f"decode;dur={(self.run_start - self.began) * 1000:.3f}, "
                          f"queue;dur={self.queue * 1000:.3f}, "
                          f"worker;dur={self.worker * 1000:.3f}, "
                          f"model;dur={self.model * 1000:.3f}, "
                          f"encode;dur={(finished - self.run_end) * 1000:.3f}")
        if self.cold_start is not None:
            values.append(self.cold_start.server_timing())
        return values
