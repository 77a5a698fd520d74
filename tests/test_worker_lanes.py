"""The worker's lanes (leader/follower): a prediction runs on the thread that read it,
the next lane reads meanwhile, at most ``threads`` predictions run at once and the rest
wait in a backlog, ``ping`` is answered while every lane is busy, EOF ends serve().

In process, with a scripted channel and predictors that block on events: no timing.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
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
    pong = channel.reply()  # with the worker's figures (its RSS, its models' count)
    assert {k: pong[k] for k in ("id", "outputs")} == {"id": 4, "outputs": []}, pong
    assert pong["models"] == 1 and pong["rss"] > 0, pong
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


# ----------------------------------------------------------------------------- polling


class FakeClock:
    """``perf_counter`` for the poller: time moves only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountedPoll:
    """A ``select.poll`` that counts its zero-timeout polls (a lane's polling)."""

    def __init__(self, poll: Any) -> None:
        self._poll = poll
        self.polls = 0

    def poll(self, timeout: float | None = None) -> Any:
        self.polls += timeout == 0
        return self._poll.poll(timeout)

    def polled(self) -> bool:
        """Whether it is being polled (waits a while for the first poll)."""
        deadline = time.monotonic() + PATIENCE
        while not self.polls and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.polls > 0


def _waiting(poller: Any, busy: bool) -> threading.Thread:
    thread = threading.Thread(target=poller.wait, args=(busy,), daemon=True)
    thread.start()
    return thread


@pytest.fixture
def polled(monkeypatch: pytest.MonkeyPatch) -> Any:
    from tfaas_jupyter.worker import polling

    clock = FakeClock()
    monkeypatch.setattr(polling.time, "perf_counter", clock)
    ours, theirs = socket.socketpair()
    poller = polling.FramePoller(ours, window=0.001)
    poller._sock_poll = CountedPoll(poller._sock_poll)
    yield poller, theirs, clock
    poller.close()
    ours.close()
    theirs.close()


def test_the_reading_lane_sleeps_while_predictions_run_then_polls(polled) -> None:
    poller, peer, clock = polled
    poller.sleep_while_busy()
    waiting = _waiting(poller, busy=True)
    waiting.join(0.2)
    assert waiting.is_alive(), "returned while predictions ran and no frame came"
    assert poller._sock_poll.polls == 0, "polled while predictions ran"
    poller.predictions_ended()  # wakes it: it polls now (the clock stands still)
    assert poller._sock_poll.polled(), "did not poll after the predictions ended"
    assert waiting.is_alive()
    peer.send(b"x")  # a frame: polling sees it
    waiting.join(PATIENCE)
    assert not waiting.is_alive()


def test_a_frame_wakes_the_lane_sleeping_while_predictions_run(polled) -> None:
    poller, peer, clock = polled
    poller.sleep_while_busy()
    waiting = _waiting(poller, busy=True)
    peer.send(b"x")
    waiting.join(PATIENCE)
    assert not waiting.is_alive()


def test_predictions_ending_after_a_frame_woke_the_lane_leave_no_wake_up_behind(
        polled) -> None:
    poller, peer, clock = polled
    poller.sleep_while_busy()
    waiting = _waiting(poller, busy=True)
    peer.send(b"x")  # a frame wakes it while predictions still run
    waiting.join(PATIENCE)
    assert not waiting.is_alive()
    ours = socket.socket(fileno=os.dup(poller._sock_fd))  # the lane reads the frame
    ours.recv(16)
    ours.close()
    poller.predictions_ended()  # the lane was not sleeping any more: no wake-up
    poller.sleep_while_busy()  # predictions run again; the lane sleeps until they end
    waiting = _waiting(poller, busy=True)
    waiting.join(0.2)
    assert waiting.is_alive(), "a stale wake-up cut the sleep short"
    assert poller._sock_poll.polls == 0, "polled while predictions ran"
    poller.predictions_ended()
    assert poller._sock_poll.polled()
    peer.send(b"x")
    waiting.join(PATIENCE)
    assert not waiting.is_alive()


def test_polling_stops_once_frames_come_later_than_the_window(polled) -> None:
    poller, peer, clock = polled
    poller.predictions_ended()
    clock.now += 0.0005  # the next frame came within the window: polling pays
    poller.frame_read()
    waiting = _waiting(poller, busy=False)
    assert poller._sock_poll.polled(), "did not poll although it paid"
    assert waiting.is_alive()
    peer.send(b"x")
    waiting.join(PATIENCE)
    assert not waiting.is_alive()
    ours = socket.socket(fileno=os.dup(poller._sock_fd))  # the lane reads the frame
    ours.recv(16)
    ours.close()

    poller.predictions_ended()
    clock.now += 0.002  # past the window: polling would not have caught it
    poller.frame_read()
    poller._sock_poll.polls = 0
    waiting = _waiting(poller, busy=False)  # no frame comes (and time stands still)
    waiting.join(PATIENCE)
    assert not waiting.is_alive() and poller._sock_poll.polls == 0, (
        "polled although the last frame came too late")
