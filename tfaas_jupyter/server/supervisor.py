"""The model worker's lifecycle policy, from the Jupyter server (asyncio, no TensorFlow).

:class:`ModelWorker` is the server's handle of the worker: it starts the worker on
first use (:mod:`~tfaas_jupyter.server.launch` says how) and stops it after
``idle_timeout`` seconds without calls, so a server that serves no model runs no
TensorFlow; restarts it lazily after a crash, backing off repeated failed starts;
sends it a heartbeat every second, which its reading thread answers even while
predictions run, and kills and replaces it when it leaves one unanswered for
``heartbeat_timeout`` seconds (a hung worker), or when a request hangs; and passes the
memory budget on (:mod:`~tfaas_jupyter.server.monitor`: heartbeats and a status
that never waits on the worker).
One worker process and its channel are a
:class:`~tfaas_jupyter.server.workerproc.WorkerProcess`; the frames are
:mod:`tfaas_jupyter.worker.wire`'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from ..worker import ops
from ..worker.polling import yield_cpu
from ..worker.wire import ErrorKind, ProtocolError
from .errors import (
    ModelError,
    ModelTooBig,
    WorkerCrashed,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from .launch import exit_phrase, spawn, worker_environment
from .modelref import ModelRef
from .monitor import WorkerMonitor
from .operations import WorkerOperations
from .sysinfo import oom_kills
from .timing import ColdStart
from .workerproc import WorkerProcess

__all__ = [
    "WorkerError",
    "WorkerUnavailable",
    "WorkerCrashed",
    "WorkerTimeout",
    "ModelError",
    "ModelTooBig",
    "ModelRef",
    "ModelWorker",
]


class ModelWorker(WorkerMonitor, WorkerOperations):
    """The server-side handle of the model worker process.

    Every call starts the worker lazily (concurrent callers share one start) and restarts
    it after a crash; repeated start failures back off (calls fail fast with
    :attr:`last_error` meanwhile instead of spinning).
    """

    def __init__(
        self,
        *,
        python: str | None = None,
        env: dict[str, str] | None = None,
        threads: int | None = None,
        cache_size: int = 10,
        request_timeout: float = 60.0,
        load_timeout: float = 600.0,
        start_timeout: float = 120.0,
        log: logging.Logger | None = None,
        unavailable: str | None = None,
        idle_timeout: float = 0.0,
        memory_limit: int = 0,
        busy_poll: float = 0.0,
        heartbeat_timeout: float = 10.0,
    ) -> None:
        self.python = python or sys.executable
        self.env = worker_environment(os.environ if env is None else env)
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Keras imports matplotlib when it is installed: no GUI backend in a worker
        self.env.setdefault("MPLBACKEND", "Agg")
        self.threads = threads
        self.cache_size = cache_size
        self.request_timeout = request_timeout
        #: Extra seconds a load may take (a big SavedModel can take minutes; a
        #: prediction must not).
        self.load_timeout = load_timeout
        self.start_timeout = start_timeout
        #: Why this worker cannot start at all (a configuration problem found before
        #: the first start, e.g. a kernelspec that does not exist): every start says so.
        self.unavailable = unavailable
        self.log = log or logging.getLogger("tfaas_jupyter.worker")
        self._conn: WorkerProcess | None = None
        self._starting: asyncio.Future[WorkerProcess] | None = None
        self._state = "stopped"
        self._restarts = 0
        self._starts = 0
        self._last_error: str | None = None
        self._failures = 0  # consecutive failed starts
        self._retry_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Seconds without a request after which the worker is stopped (0: never).
        self.idle_timeout = idle_timeout
        #: Bytes of RSS past which the worker evicts models (0: no limit).
        self.memory_limit = memory_limit
        #: Seconds the event loop polls for the worker's answer, and the worker for the
        #: next request, before sleeping (0: never); see :meth:`_poll_answers` and the
        #: worker's ``polling`` module.
        self.busy_poll = busy_poll
        self._last_answer = 0.0  # seconds the last answer took, from the request's send
        self._poll_until = 0.0  # perf_counter() deadline of the polling, when polling
        self._polling = False
        self._active = 0  # calls in flight in the worker
        self._last_used = time.monotonic()
        self._idle_task: asyncio.Task[None] | None = None
        #: Why the worker is not running: "not started", "idle", "crashed", "shutdown"...
        self._stopped_reason = "not started"
        self._last_start_seconds: float | None = None
        self._start_began = 0.0  # monotonic() of the last start's beginning
        self._last_cold_start: ColdStart | None = None
        #: Seconds the worker may leave a heartbeat unanswered before it is taken for
        #: hung, killed and replaced (0: no heartbeat; only ``request_timeout`` applies).
        self.heartbeat_timeout = heartbeat_timeout
        self._init_monitor()

    # ------------------------------------------------------------------ properties

    @property
    def pid(self) -> int | None:
        c = self._conn
        return c.proc.pid if c is not None and c.alive else None

    @property
    def state(self) -> str:
        """``running``, ``starting``, ``stopped`` or ``failed``."""
        if self._starting is not None and not self._starting.done():
            return "starting"
        if self._state == "running" and not (self._conn is not None and self._conn.alive):
            return "stopped"
        return self._state

    @property
    def restarts(self) -> int:
        """Starts after the first successful one (crash recoveries, timeouts...)."""
        return self._restarts

    @property
    def last_error(self) -> str | None:
        return self._last_error

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the worker if it is not running. Raises :class:`WorkerUnavailable`."""
        await self._ensure()

    def _adopt_loop(self) -> None:
        """Forget a worker started from another event loop.

        Its reader task and futures belong to that loop, which may not run any more
        (e.g. the extension started the worker while the server was being initialised
        on a temporary loop): waiting on them would hang. Kill that process and start
        afresh on the running loop.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        old, self._conn, self._starting, self._loop = self._conn, None, None, loop
        self._polling = False  # a polling chain of the old loop never runs again
        self._status_task, self._snapshot, self._heartbeat_task = None, None, None
        self._heard, self._recycling = None, None
        if old is not None:
            old.abandon("event loop changed")
        if self._state in ("running", "starting"):
            self._state = "stopped"

    async def _ensure(self) -> WorkerProcess:
        self._adopt_loop()
        if self._recycling is not None and not self._recycling.done():
            await asyncio.shield(self._recycling)  # requests wait for the new worker
        c = self._conn
        if c is not None and c.alive:
            return c
        if self._starting is None or self._starting.done():
            now = time.monotonic()
            if self.unavailable and self._state == "failed":  # no attempt does better
                raise WorkerUnavailable(self.unavailable)
            if self._failures and now < self._retry_at:
                raise WorkerUnavailable(
                    f"{self._last_error} (next attempt in {self._retry_at - now:.0f} s)"
                )
            self._starting = asyncio.ensure_future(self._start())
        # shield: one caller being cancelled must not abort the start others wait for
        return await asyncio.shield(self._starting)

    async def _start(self) -> WorkerProcess:
        self._state = "starting"
        began = self._start_began = time.monotonic()
        try:
            if self.unavailable:
                raise WorkerUnavailable(self.unavailable)
            conn = await self._spawn()
        except WorkerUnavailable as e:
            self._failures += 1
            self._retry_at = time.monotonic() + min(30.0, 0.5 * 2 ** (self._failures - 1))
            self._last_error = e.message
            self._state = "failed"
            self.log.error("%s", e.message)
            raise
        except BaseException:
            self._state = "failed"
            raise
        self._failures = 0
        if self._starts:
            self._restarts += 1
        self._starts += 1
        self._conn = conn
        self._state = "running"
        self._stopped_reason = ""
        self._last_used = time.monotonic()
        self._last_start_seconds = self._last_used - began
        self._cancel_idle_watch()
        if self.idle_timeout > 0:
            self._idle_task = asyncio.ensure_future(self._stop_when_idle(conn))
        self._unanswered_since = None
        if self.heartbeat_timeout > 0:
            self._heartbeat_task = asyncio.ensure_future(self._heartbeat(conn))
        self.log.info("model worker started in %.1f s (pid %s, %s)",
                      self._last_start_seconds, conn.proc.pid, self.python)
        return conn

    async def _spawn(self) -> WorkerProcess:
        options = ["--cache-size", str(self.cache_size), "--parent-pid", str(os.getpid()),
                   "--memory-limit", str(max(0, int(self.memory_limit)))]
        if self.threads:
            options += ["--threads", str(self.threads)]
        if self.busy_poll > 0:
            options += ["--poll-us", str(round(self.busy_poll * 1e6))]
        proc, parent = await spawn(self.python, self.env, options)
        conn = WorkerProcess(proc)
        conn.oom_kills = oom_kills()
        await conn.connect(parent, lambda error: self._on_closed(conn, error), self.log)
        try:
            ping = ops.request_header(ops.Ping())
            await asyncio.wait_for(self._roundtrip(conn, ping), self.start_timeout)
        except asyncio.TimeoutError:
            conn.kill("start timeout")
            await conn.reap(self.log)
            raise WorkerUnavailable(
                f"The model worker ({self.python}) did not answer within "
                f"{self.start_timeout:g} s of starting{conn.tail()}"
            ) from None
        except WorkerError:
            await conn.reap(self.log)
            fatal = conn.fatal_line()
            rc = conn.proc.returncode
            if fatal:
                msg = f"The model worker cannot start: {fatal}"
                if rc == ops.MEMORY_LIMIT_REFUSED:
                    self.unavailable = msg  # every later start would say the same
            else:
                msg = (f"The model worker ({self.python}) failed to start "
                       f"({exit_phrase(rc)}){conn.tail()}")
            raise WorkerUnavailable(msg) from None
        except BaseException:
            conn.kill("start cancelled")
            await conn.reap(self.log)
            raise
        return conn

    def _on_closed(self, conn: WorkerProcess, error: BaseException | None) -> None:
        """The channel ended (EOF, or why): fail its pending requests once the process
        is gone (:meth:`_on_dead`)."""
        if isinstance(error, ProtocolError):
            self.log.error("model worker protocol error: %s", error)
            conn.kill("protocol error")
        conn.tasks.append(asyncio.ensure_future(self._on_dead(conn)))

    async def _on_dead(self, conn: WorkerProcess) -> None:
        """The policy's side of a worker's end: its last error, and why it stopped."""
        if conn.dead.done():
            return
        msg = await conn.wait_ended()
        if conn.kill_reason is None:
            self._last_error = msg
            if self._conn is conn:
                self.log.error("%s", msg)
        if self._conn is conn:
            self._stopped_reason = conn.kill_reason or "crashed"
            self._state = "stopped"
            self._worker_ended()

    async def stop(self, reason: str = "server shutdown") -> None:
        """Stop the worker: close the channel (it exits on EOF), then kill. Idempotent."""
        self._adopt_loop()
        if self._starting is not None and not self._starting.done():
            try:
                await self._starting
            except BaseException:
                pass
        conn, self._conn = self._conn, None
        self._state = "stopped"
        self._cancel_idle_watch()
        if conn is None:
            return
        self._stopped_reason = reason
        await conn.end(reason, self.log)

    def _cancel_idle_watch(self) -> None:
        """Cancel the idle watch and the heartbeat of the worker that is going."""
        for task in (self._idle_task, self._heartbeat_task):
            if task is not None and not task.done() and task is not _current_task():
                try:
                    task.cancel()
                except RuntimeError:  # its event loop is closed: it will never run again
                    pass
        self._idle_task = self._heartbeat_task = None

    async def _stop_when_idle(self, conn: WorkerProcess) -> None:
        """Stop ``conn``'s worker once no call has used it for ``idle_timeout`` seconds.

        The check and the hand-over happen with no await in between, so a call either
        got this worker before (and it is not idle) or starts a new one after.
        """
        while self._conn is conn and conn.alive and self.idle_timeout > 0:
            due = self._last_used + self.idle_timeout - time.monotonic()
            if self._active == 0 and due <= 0:
                break
            await asyncio.sleep(max(due, 0.05) if self._active == 0 else
                                min(max(self.idle_timeout, 0.05), 5.0))
        else:
            return
        self._conn = None
        self._state = "stopped"
        self._stopped_reason = "idle"
        self.log.info("model worker (pid %s) stopped after %g s without requests",
                      conn.proc.pid, self.idle_timeout)
        await conn.end(f"idle for {self.idle_timeout:g} s", self.log)

    # ------------------------------------------------------------------ requests

    async def _roundtrip(self, conn: WorkerProcess, header: dict[str, Any],
                         arrays: Sequence[np.ndarray] = ()
                         ) -> tuple[dict[str, Any], list[np.ndarray]]:
        rid, fut = await conn.send(header, arrays)
        try:
            sent = time.perf_counter()
            if self.busy_poll and self._last_answer <= self.busy_poll:
                self._poll_until = sent + self.busy_poll
                if not self._polling:
                    self._polling = True
                    self._poll_answers(conn)
            answer = await fut
            self._last_answer = time.perf_counter() - sent
            return answer
        finally:
            conn.pending.pop(rid, None)

    def _poll_answers(self, conn: WorkerProcess) -> None:
        """Keep the event loop polling its sockets, one turn after another, while an
        answer is awaited, for at most :attr:`busy_poll` seconds after the last send.

        A loop with nothing to do sleeps in the kernel, and the answer then pays for
        waking the server's CPU: 0.1-0.2 ms on a virtual machine whose idle CPUs halt,
        more than a small model's call. One callback per loop turn keeps the loop's
        poll at a zero timeout instead; a busy loop (many clients) turns anyway, and an
        answer slower than the window (the last one was) is not polled for at all.
        """
        if conn.pending and time.perf_counter() < self._poll_until:
            yield_cpu()  # a worker sharing this CPU answers now, not after the window
            asyncio.get_running_loop().call_soon(self._poll_answers, conn)
        else:
            self._polling = False

    async def _request(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = (),
                       timeout: float | None = None, *, use: bool = True,
                       ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """One call to the worker (started if needed). ``use=False``: a call that does
        not count as use for the idle timeout (a status query)."""
        conn = await self._ensure()
        timeout = self.request_timeout if timeout is None else timeout
        self._active += use
        try:
            try:
                reply, out = await _within(self._roundtrip(conn, header, arrays), timeout)
            except WorkerCrashed:
                if not conn.replaced:
                    raise
                # its worker hung and was replaced: once more, on the new one (a
                # request that hangs that one too fails, with why)
                conn = await self._ensure()
                reply, out = await _within(self._roundtrip(conn, header, arrays), timeout)
        except asyncio.TimeoutError:
            msg = (f"The model worker did not answer within {timeout:g} s; "
                   "it was killed and will be restarted")
            self._last_error = msg
            self.log.error("%s (op %s)", msg, header.get("op"))
            conn.kill(f"a request timed out after {timeout:g} s")
            raise WorkerTimeout(msg) from None
        finally:
            if use:
                self._active -= 1
                self._last_used = time.monotonic()
        if "error" in reply:
            if reply.get("kind") == "memory":
                raise ModelTooBig(str(reply["error"]))
            raise ModelError(str(reply["error"]), reply.get("kind") or ErrorKind.MODEL)
        return reply, out

    @property
    def running(self) -> bool:
        """A worker process is up and usable from this event loop."""
        c = self._conn
        return c is not None and c.alive and self._loop is _running_loop()

    def summary(self) -> str:
        """The worker's state in a few words, as the page, widget and magics show it."""
        state = self.state
        if state == "running":
            silent = self._unanswered_seconds()
            if silent is not None and silent >= 2 * self.heartbeat_interval:
                return f"running (pid {self.pid}), not answering for {silent:.0f} s"
            return f"running (pid {self.pid})"
        if state == "starting":
            return f"starting ({time.monotonic() - self._start_began:.0f} s)"
        if state == "failed":
            return f"failed: {self.last_error}"
        if self._stopped_reason == "idle":
            return (f"not running (stopped after {self.idle_timeout:g} s idle; "
                    "starts on first use)")
        return "not running (starts on first use)"

#: ``asyncio.timeout`` (Python 3.11+), else None.
_timeout = getattr(asyncio, "timeout", None)


async def _within(awaitable: Any, timeout: float) -> Any:
    """``await awaitable``, raising ``asyncio.TimeoutError`` after ``timeout`` s.

    In the caller's own task where Python has ``asyncio.timeout``: ``asyncio.wait_for``
    runs a coroutine in a task of its own, one more turn of the event loop per call.
    """
    if _timeout is None:
        return await asyncio.wait_for(awaitable, timeout)
    async with _timeout(timeout):
        return await awaitable


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
