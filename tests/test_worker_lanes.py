"""The worker's lanes (leader/follower): a prediction runs on the thread that read it,
the next lane reads meanwhile, at most ``threads`` predictions run at once and the rest
wait in a backlog, ``ping`` is answered while every lane is busy, EOF ends serve().

In process, with a scripted channel and predictors that block on events: no timing.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np
import pytest

from tfaas_jupyter.worker.main import Worker

#: Generous bound for a thread to reach a point it is bound to reach (never for speed).
PATIENCE = 60.0


class ScriptedChannel:
    """Frames in from a queue (``None``: EOF), replies out to another."""

    def __init__(self) -> None:
        self.incoming: queue.Queue[tuple[dict[str, Any], list[Any]] | None] = queue.Queue()
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.readers: list[str] = []

    def read(self) -> tuple[dict[str, Any], list[Any]] | None:
        frame = self.incoming.get()
        if frame is not None:
            self.readers.append(threading.current_thread().name)
        return frame

    def write(self, header: dict[str, Any], arrays: Any = ()) -> None:
        self.replies.put({**header, "outputs": list(arrays)})

    def send(self, rid: int, op: str, **members: Any) -> None:
        self.incoming.put(({"id": rid, "op": op, **members},
                           [np.full((1, 2), rid, np.float32)]))

    def reply(self) -> dict[str, Any]:
        return self.replies.get(timeout=PATIENCE)


class GatedPredictor:
    """Answers its input doubled once its gate opens; notes the thread and the count
    of predictions running at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Semaphore(0)
        self.threads: list[str] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def predict(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.release()
        assert self.gate.wait(PATIENCE)
        with self._lock:
            self.running -= 1
        return [arrays[0] * 2]


def serving(threads: int, **predictors: Any) -> tuple[Worker, ScriptedChannel, threading.Thread]:
    channel = ScriptedChannel()
    worker = Worker(channel, threads, cache_size=10)
    for key, predictor in predictors.items():
        worker._cache.put(key, predictor)
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    return worker, channel, thread


def test_a_prediction_runs_on_the_lane_that_read_it_while_another_lane_reads() -> None:
    slow, quick = GatedPredictor(), GatedPredictor()
    quick.gate.set()
    worker, channel, thread = serving(2, slow=slow, quick=quick)
    channel.send(1, "predict", key="slow")
    assert slow.entered.acquire(timeout=PATIENCE)
    channel.send(2, "predict", key="quick")  # read and run while "slow" still runs
    second = channel.reply()
    assert second["id"] == 2 and second["outputs"][0].tolist() == [[4.0, 4.0]]
    slow.gate.set()
    first = channel.reply()
    assert first["id"] == 1 and first["outputs"][0].tolist() == [[2.0, 2.0]]
    # no hop to another thread: each ran on the lane that read its frame
    assert slow.threads == [channel.readers[0]] and quick.threads == [channel.readers[1]]
    assert all(name.startswith("tfaas-lane-") for name in channel.readers)
    assert "model_s" in first and "error" not in first
    channel.incoming.put(None)
    thread.join(PATIENCE)
    assert not thread.is_alive() and worker._end_error is None


def test_past_the_thread_count_predictions_wait_and_ping_still_answers() -> None:
    gated = GatedPredictor()
    worker, channel, thread = serving(1, m=gated)
    for rid in (1, 2, 3):
        channel.send(rid, "predict", key="m")
    assert gated.entered.acquire(timeout=PATIENCE)
    channel.send(4, "ping")  # every prediction slot is taken: the reading lane answers
    assert channel.reply() == {"id": 4, "outputs": []}
    gated.gate.set()
    replies = sorted((channel.reply() for _ in range(3)), key=lambda r: r["id"])
    assert [r["id"] for r in replies] == [1, 2, 3]
    for r in replies:
        assert r["outputs"][0].tolist() == [[2.0 * r["id"]] * 2]
    assert gated.most == 1  # threads=1: one prediction at a time, the rest waited
    channel.send(5, "predict", key="absent")  # errors still cross with their kind
    assert channel.reply()["kind"] == "not_loaded"
    channel.incoming.put(None)
    thread.join(PATIENCE)
    assert not thread.is_alive()


def test_a_broken_channel_ends_serve_with_its_error() -> None:
    class Broken(ScriptedChannel):
        def read(self) -> Any:
            raise EOFError("channel closed in the middle of a frame")

    worker = Worker(Broken(), 2, cache_size=1)
    with pytest.raises(EOFError):
        worker.serve()
