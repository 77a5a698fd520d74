"""A hung model worker (SIGSTOP) never stalls monitoring, is killed and replaced within
a few seconds of its first unanswered heartbeat (not after the request timeout), and
the requests it held are served by the new one; a slow model is never taken for a
hung worker; a killed worker's 503 says what happened, and no more."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import Reply, TFaaSCaller, scrape, seed_predict

HEARTBEAT = 2.0
#: What monitoring may take, whatever the worker does: far less than the heartbeat's
#: timeout, which a page that waited for the stopped worker would take at least (and
#: room for a machine loaded by other work, where one page alone can take 100 ms).
PROMPT = 1.0
MONITORING = ("status", "metrics", "models", "")  # "" is the tfaas/ page


@pytest.fixture
def tfaas_config() -> dict[str, Any]:
    return {"worker_heartbeat_timeout": HEARTBEAT, "request_timeout": 300.0}


async def timed(tfaas: TFaaSCaller, path: str) -> tuple[Reply, float]:
    began = time.perf_counter()
    reply = await tfaas.call("GET", path)
    return reply, time.perf_counter() - began


async def monitoring_answers_promptly(tfaas: TFaaSCaller) -> dict[str, Any]:
    """Every monitoring page answers 200 within :data:`PROMPT`; answers the status."""
    answers = {}
    for path in MONITORING:
        reply, seconds = await timed(tfaas, path)
        assert reply.code == 200, (path, reply.body)
        assert seconds < PROMPT, (path, seconds)
        answers[path] = reply
    status: dict[str, Any] = answers["status"].json()
    metrics = scrape(answers["metrics"].body.decode())
    assert len(metrics["tfaas_worker_unanswered_seconds"]) == 1
    return status


def _proc_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` ("X" once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


def _stopped(pid: int) -> bool:
    return _proc_state(pid) in ("T", "t")


def _gone(pid: int) -> bool:
    return _proc_state(pid) in ("Z", "X")


async def test_a_stopped_worker_is_replaced_and_monitoring_never_waits(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    # a worker not started yet: monitoring answers at once, without starting one
    status = await monitoring_answers_promptly(tfaas)
    assert status["worker"]["state"] == "stopped" and status["worker"]["pid"] is None

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    expected = seed_predict(doc["values"])
    first = await tfaas.predict(doc)
    assert first.code == 200
    np.testing.assert_allclose(first.json(), expected, rtol=1e-5)
    pid = (await tfaas.call("GET", "status")).json()["worker"]["pid"]

    os.kill(pid, signal.SIGSTOP)  # hung: TensorFlow stuck, the interpreter's lock held
    try:
        stopped_at = time.monotonic()
        for _ in range(100):  # the kernel stops it within moments
            if _stopped(pid):
                break
            await asyncio.sleep(0.01)
        assert _stopped(pid)
        pending = asyncio.ensure_future(tfaas.predict(doc))
        seen_silent = False
        replaced_after = None
        while not pending.done():
            status = await monitoring_answers_promptly(tfaas)
            worker = status["worker"]
            if worker["pid"] == pid and (worker["unanswered_seconds"] or 0) >= 1.0:
                seen_silent = True
                assert "not answering" in worker["summary"], worker
            if worker["state"] == "starting":  # the replacement, shown as it starts
                assert worker["starting_seconds"] is not None, worker
            if replaced_after is None and _gone(pid):
                replaced_after = time.monotonic() - stopped_at
            assert time.monotonic() - stopped_at < 240, "the held request never ended"
            await asyncio.sleep(0.1)
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
    # killed within a few seconds of its silence (heartbeats every second)
    assert replaced_after is not None and replaced_after < HEARTBEAT + 4, replaced_after
    assert seen_silent
    # the held request went to the new worker, and has the right answer
    reply = await pending
    assert reply.code == 200, reply.body
    np.testing.assert_allclose(reply.json(), expected, rtol=1e-5)
    worker = (await tfaas.call("GET", "status")).json()["worker"]
    assert worker["pid"] not in (None, pid) and worker["restarts"] == 1
    assert f"did not answer for {HEARTBEAT:g} s" in worker["last_error"]
    assert "worker_heartbeat_timeout" in worker["last_error"]
    await monitoring_answers_promptly(tfaas)


def sleepy_graphdef(directory: Path, seconds: float) -> Path:
    """A GraphDef ``y = 2 x`` that first sleeps ``seconds`` inside TensorFlow (a
    dataset's sleep), with the interpreter's lock released: a slow model."""
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing

    directory.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        dataset = tf.data.Dataset.range(1).apply(testing.sleep(int(seconds * 1e6)))
        with tf.control_dependencies([dataset.get_single_element()]):
            tf.identity(x * 2.0, name="y")
    path = directory / "model.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


async def test_a_slow_model_is_not_taken_for_a_hung_worker(tfaas: TFaaSCaller,
                                                          tmp_path: Path) -> None:
    model = sleepy_graphdef(tmp_path / "sleepy", 3 * HEARTBEAT)
    reply = await tfaas.upload("sleepy", model.read_bytes(),
                               params={"inputNode": "x", "outputNode": "y"})
    assert reply.code == 200, reply.body
    pid = (await tfaas.call("GET", "status")).json()["worker"]["pid"]
    rows = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]
    began = time.monotonic()
    pending = asyncio.ensure_future(tfaas.predict({"model": "sleepy", "values": rows}))
    while not pending.done():
        status = await monitoring_answers_promptly(tfaas)
        assert status["worker"]["pid"] == pid
        await asyncio.sleep(0.2)
    answer = await pending
    assert time.monotonic() - began >= 3 * HEARTBEAT  # it was slow, and it was served
    assert answer.code == 200, answer.body
    np.testing.assert_array_equal(np.asarray(answer.json(), np.float32),
                                  2 * np.asarray(rows, np.float32))
    worker = (await tfaas.call("GET", "status")).json()["worker"]
    assert worker["pid"] == pid and worker["restarts"] == 0 and not worker["last_error"]


async def test_a_killed_worker_says_how_it_ended_and_nothing_more(
    tfaas: TFaaSCaller, seed_dir: Path, jp_serverapp
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    pid = (await tfaas.call("GET", "status")).json()["worker"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    service = jp_serverapp.web_app.settings["tfaas_service"]
    pending = asyncio.ensure_future(tfaas.predict(doc))
    for _ in range(6000):
        if service.in_flight:
            break
        await asyncio.sleep(0.01)
    os.kill(pid, signal.SIGKILL)  # by a person: not the kernel's out-of-memory killer
    reply = await pending
    assert reply.code == 503, reply.body
    assert reply.headers.get("Retry-After") == "1"
    error = reply.json()["error"]
    assert f"(pid {pid}) was killed by SIGKILL (signal 9)" in error, error
    assert "memory" not in error, error
    again = await tfaas.predict(doc)
    assert again.code == 200
    np.testing.assert_allclose(again.json(), seed_predict(doc["values"]), rtol=1e-5)


@pytest.mark.parametrize("layout, expected", [
    # cgroup v2: memory.events of the process's own cgroup
    ({"proc/self/cgroup": "0::/user.slice/s.scope\n",
      "sys/fs/cgroup/user.slice/s.scope/memory.events":
          "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n"}, 2),
    # cgroup v1: memory.oom_control
    ({"proc/self/cgroup": "5:cpu:/\n4:memory:/job\n",
      "sys/fs/cgroup/memory/job/memory.oom_control":
          "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"}, 7),
    # not readable: unknown, never a guess
    ({"proc/self/cgroup": "0::/\n"}, None),
])
def test_out_of_memory_kills_are_read_from_the_cgroup(
    tmp_path: Path, layout: dict[str, str], expected: int | None
) -> None:
    from tfaas_jupyter.server.launch import exit_phrase
    from tfaas_jupyter.server.sysinfo import oom_kills

    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert oom_kills(str(tmp_path)) == expected
    # the 503's words: out of memory only when the kernel's count says so
    assert "out-of-memory" in exit_phrase(-signal.SIGKILL, oom_killed=True)
    assert exit_phrase(-signal.SIGKILL) == "was killed by SIGKILL (signal 9)"
    assert exit_phrase(-signal.SIGTERM) == "was killed by SIGTERM (signal 15)"
    assert exit_phrase(3) == "exited with code 3"
