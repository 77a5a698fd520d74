"""What the supervisor knows of its model worker without waiting on it.

A heartbeat every :attr:`~WorkerMonitor.heartbeat_interval` seconds, answered by the
worker's reading thread even while predictions and loads run, tells that it is alive
and its resident memory: a worker silent for ``heartbeat_timeout`` seconds is killed
and replaced; one over its memory budget unloads its least recently used model, or,
with none left, is restarted between requests. :meth:`~WorkerMonitor.status` shows
the worker's state and its last figures, and never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

import numpy as np

from ..worker import ops
from .errors import WorkerError, WorkerUnavailable
from .launch import installed_versions, probe_versions
from .timing import ColdStart
from .workerproc import WorkerProcess


class WorkerMonitor:
    """Heartbeats, figures and status of
    :class:`~tfaas_jupyter.server.supervisor.ModelWorker` (which this is a base of)."""

    # provided by the supervisor
    python: str
    env: dict[str, str]
    threads: int | None
    cache_size: int
    request_timeout: float
    idle_timeout: float
    memory_limit: int
    busy_poll: float
    heartbeat_timeout: float
    unavailable: str | None
    log: logging.Logger
    _conn: WorkerProcess | None
    _state: str
    _stopped_reason: str
    _last_error: str | None
    _active: int
    _starts: int
    _last_used: float
    _start_began: float
    _last_start_seconds: float | None
    _last_cold_start: ColdStart | None

    @property
    def running(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    @property
    def state(self) -> str:
        raise NotImplementedError

    @property
    def restarts(self) -> int:
        raise NotImplementedError

    @property
    def last_error(self) -> str | None:
        raise NotImplementedError

    def _adopt_loop(self) -> None:
        raise NotImplementedError

    async def _ensure(self) -> Any:
        raise NotImplementedError

    def summary(self) -> str:
        raise NotImplementedError

    def _init_monitor(self) -> None:
        """The monitor's own state (the supervisor's constructor calls this)."""
        self._heartbeat_task: asyncio.Task[None] | None = None
        #: monotonic() of the oldest heartbeat the running worker has not answered yet
        self._unanswered_since: float | None = None
        #: The running worker's last status (its own figures) and when it came.
        self._snapshot: tuple[WorkerProcess, float, dict[str, Any]] | None = None
        self._status_task: asyncio.Future[None] | None = None
        self._status_of: WorkerProcess | None = None  # the worker it asks
        #: The last heartbeat's answer: of which worker, when, its RSS.
        self._heard: tuple[WorkerProcess, float, int] | None = None
        #: Heartbeats in a row that found the worker over its memory limit.
        self._over_budget = 0
        #: Loads under way: their model is in the worker's RSS but not yet among its
        #: models, and the load makes room for it itself.
        self._loads_in_flight = 0
        #: A restart between requests under way (the worker outgrew its budget).
        self._recycling: asyncio.Future[None] | None = None
        #: TensorFlow and Keras versions of the worker's interpreter, once known.
        self._versions: dict[str, str | None] | None = None
        self._versions_task: asyncio.Future[dict[str, str | None]] | None = None

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between two heartbeats: a few within ``heartbeat_timeout``."""
        return min(1.0, self.heartbeat_timeout / 4)

    async def _heartbeat(self, conn: WorkerProcess) -> None:
        """Ping ``conn``'s worker every :attr:`heartbeat_interval` while it runs.

        The worker's reading thread answers a ping at once, whatever its prediction
        and load threads are doing, so a slow model is never taken for a hung worker;
        a worker that leaves one unanswered for ``heartbeat_timeout`` seconds (stopped,
        or stuck with the interpreter's lock held) is killed and replaced. The ping
        goes on the channel the requests use: no cost per request.
        """
        ping = ops.request_header(ops.Ping())
        self._over_budget = 0  # a new worker: its predecessor's count is not its own
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if self._conn is not conn or not conn.alive:
                return
            self._unanswered_since = time.monotonic()
            try:
                reply, _ = await self._ask(conn, ping, self.heartbeat_timeout)
            except asyncio.TimeoutError:
                self._hung(conn)
                return
            except WorkerError:
                return  # it ended: _on_dead says why
            if self._conn is conn:
                self._unanswered_since = None
                self._after_heartbeat(conn, reply)

    def _after_heartbeat(self, conn: WorkerProcess, reply: dict[str, Any]) -> None:
        """What a heartbeat's answer tells: the worker's memory. Over its limit for
        three heartbeats in a row (none while a load runs: it makes room for its model
        itself, which is not yet among those the worker counts), the worker evicts its
        least recently used models, as many as their sizes cover the excess; with
        none left to evict, or not enough, it is restarted between requests (its
        models load again on demand), so the budget holds without anyone stepping in."""
        pong = ops.Pong.parse(reply)
        self._heard = (conn, time.monotonic(), pong.rss)
        limit = self.memory_limit
        if not limit or pong.rss <= limit or self._loads_in_flight:
            self._over_budget = 0
            return
        self._over_budget += 1
        if self._over_budget < 3:
            return
        self._over_budget = 0
        if pong.models:
            conn.tasks.append(asyncio.ensure_future(self._make_room(conn)))
        else:
            conn.tasks.append(asyncio.ensure_future(self._recycle(
                f"its resident memory, {pong.rss / 2**20:.0f} MiB, stayed over its limit "
                f"of {limit / 2**20:.0f} MiB with no model left to evict")))

    async def _make_room(self, conn: WorkerProcess) -> None:
        """Bring ``conn``'s worker back within its budget: unload its least recently
        used models, as many as their sizes cover the excess; when all of them would
        not (the worker itself has grown), restart it now rather than evict them one
        by one to no avail."""
        await self._fetch_status(conn)
        snapshot = self._snapshot
        if snapshot is None or snapshot[0] is not conn or not snapshot[2].get("loaded"):
            return
        figures = snapshot[2]
        limit = self.memory_limit
        over = int(figures.get("rss", 0)) - limit
        if not limit or over <= 0:
            return
        held = figures.get("model_sizes", {})
        sizes = {key: int(held.get(key, 0)) for key in figures["loaded"]}
        if sum(sizes.values()) < over:
            if self._conn is not conn:
                return
            await self._recycle(
                f"its resident memory, {figures['rss'] / 2**20:.0f} MiB, stayed over its "
                f"limit of {limit / 2**20:.0f} MiB by more than its models take "
                f"({sum(sizes.values()) / 2**20:.0f} MiB)")
            return
        freed = 0
        for key, size in sizes.items():  # least recently used first
            if freed >= over:
                break
            self.log.info("tfaas: the model worker is over its memory limit: unloading %s",
                          key)
            try:
                await self._ask(conn, ops.request_header(ops.Unload(key)),
                                self.request_timeout)
            except (asyncio.TimeoutError, WorkerError):
                return
            freed += size
        await self._figures_changed()

    async def _recycle(self, why: str) -> None:
        """Restart the worker between requests: new requests wait, those in flight end
        (within ``request_timeout``), then the worker stops; the next request starts a
        new one. Concurrent callers share one restart."""
        conn = self._conn
        if self._recycling is None or self._recycling.done():
            if conn is None or not conn.alive:
                return
            self._recycling = asyncio.ensure_future(self._drain_and_stop(conn, why))
        await asyncio.shield(self._recycling)

    async def _drain_and_stop(self, conn: WorkerProcess, why: str) -> None:
        deadline = time.monotonic() + self.request_timeout
        while self._active and self._conn is conn and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._conn is not conn:
            return
        self._conn = None
        self._state = "stopped"
        self._stopped_reason = "memory"
        self._last_error = f"The model worker (pid {conn.proc.pid}) was restarted: {why}"
        self.log.warning("%s", self._last_error)
        await conn.end(f"restarted: {why}", self.log)

    def _hung(self, conn: WorkerProcess) -> None:
        """Kill a worker that left a heartbeat unanswered, and start its replacement."""
        why = (f"it did not answer for {self.heartbeat_timeout:g} s "
               "(TFaaSApp.worker_heartbeat_timeout): killed, a new worker is starting")
        self._last_error = f"The model worker (pid {conn.proc.pid}) {why}"
        self.log.error("%s", self._last_error)
        conn.replaced = True
        conn.kill(why)
        self._replace_soon()

    def _replace_soon(self) -> None:
        """Start a new worker now (in the background) for the one just killed."""
        async def replace() -> None:
            try:
                await self._ensure()
            except Exception as exc:  # reported by status; the next request retries
                self.log.warning("tfaas: the replacement model worker did not start: %s", exc)

        asyncio.ensure_future(replace())

    def _unanswered_seconds(self) -> float | None:
        """Seconds the running worker has left its oldest heartbeat unanswered (None:
        not running, or it answered them all)."""
        if not self.running or self._unanswered_since is None:
            return None
        return round(time.monotonic() - self._unanswered_since, 3)

    async def versions(self) -> dict[str, str | None]:
        """TensorFlow's and Keras's versions in the worker's interpreter, found once from
        package metadata (no TensorFlow import); ``None`` values when not found."""
        if self._versions is not None:
            return self._versions
        if self._versions_task is None or (
            self._versions_task.done() and self._versions_task.exception() is not None
        ):
            self._versions_task = asyncio.ensure_future(self._probe_versions())
        try:
            self._versions = await asyncio.shield(self._versions_task)
        except Exception as exc:
            self.log.info("tfaas: cannot read TensorFlow's version of %s: %s", self.python, exc)
            self._versions_task = None
            return {"tensorflow": None, "keras": None}
        return self._versions

    async def _probe_versions(self) -> dict[str, str | None]:
        if self.unavailable:
            raise WorkerUnavailable(self.unavailable)
        if self.python == sys.executable and \
                self.env.get("PYTHONPATH") == os.environ.get("PYTHONPATH"):
            # the server's own interpreter: its package metadata, read here (a few ms,
            # no process to start), so that a status never waits long for it
            return installed_versions()
        return await probe_versions(self.python, self.env)

    async def status(self, *, start: bool = False) -> dict[str, Any]:
        """Supervisor state merged with the worker's own status when it is running.

        Never waits on the worker: a worker that does not give its figures within
        :data:`STATUS_WAIT` (hung, stopped by a signal, busy) is shown with the last
        ones it gave (``status_age_seconds`` says how old), its state, and how long it
        has left a heartbeat unanswered (``unanswered_seconds``).

        Keys: ``state``, ``summary``, ``pid``, ``starts``, ``restarts``, ``last_error``,
        ``python`` (the worker's interpreter path), ``idle_timeout``, ``idle_seconds``
        (since the last call; ``None`` when not running), ``last_start_seconds``,
        ``last_cold_start`` (the last start + first load), ``memory_limit``,
        ``busy_poll_us``, ``heartbeat_timeout``, ``unanswered_seconds``,
        ``starting_seconds`` (while it starts); from the worker when it is running:
        ``threads``, ``loaded``, ``cache_size``, ``rss`` and ``model_sizes`` (bytes,
        estimated). ``tensorflow`` and ``keras`` come from the worker, or from package
        metadata when it is not running. A stopped worker is started first only with
        ``start=True`` (and then its figures are waited for).
        """
        info: dict[str, Any] = {
            "tensorflow": None, "keras": None, "python_version": None,
            "threads": self.threads, "loaded": [], "cache_size": self.cache_size,
            "rss": None, "model_sizes": {},
        }
        self._adopt_loop()
        if start:
            try:
                await self._ensure()
                self._last_used = time.monotonic()
            except WorkerError as e:
                info["error"] = e.message
        if self.running:
            info.update(await self._worker_figures(
                self.request_timeout if start else STATUS_WAIT))
            heard = self._heard
            if heard is not None and heard[0] is self._conn and (
                    info.get("status_age_seconds") is None
                    or time.monotonic() - heard[1] < info["status_age_seconds"]):
                info["rss"] = heard[2]  # the heartbeat's figure is the newer one
            if info.get("tensorflow"):
                self._versions = {"tensorflow": info["tensorflow"], "keras": info["keras"]}
        if not info.get("tensorflow"):
            info.update(await self.versions())
        running = self.running
        info.update(
            state=self.state, summary=self.summary(), pid=self.pid, starts=self._starts,
            restarts=self.restarts, last_error=self.last_error, python=self.python,
            idle_timeout=self.idle_timeout,
            idle_seconds=(round(time.monotonic() - self._last_used, 3)
                          if running and not self._active else (0.0 if running else None)),
            last_start_seconds=self._last_start_seconds,
            last_cold_start=self._last_cold_start.as_dict() if self._last_cold_start else None,
            memory_limit=self.memory_limit,
            busy_poll_us=round(self.busy_poll * 1e6),
            heartbeat_timeout=self.heartbeat_timeout,
            unanswered_seconds=self._unanswered_seconds(),
            starting_seconds=(round(time.monotonic() - self._start_began, 3)
                              if self.state == "starting" else None),
        )
        return info

    async def _worker_figures(self, wait: float) -> dict[str, Any]:
        """The running worker's own status, asked for now and waited for at most
        ``wait`` seconds; else the last it gave (``{}``: none yet). An answer that
        comes later is kept for the next call."""
        conn = self._conn
        assert conn is not None
        if self._status_task is None or self._status_task.done() or \
                self._status_of is not conn:
            self._status_of = conn
            self._status_task = asyncio.ensure_future(self._fetch_status(conn))
        await asyncio.wait({self._status_task}, timeout=wait)
        snapshot = self._snapshot
        if snapshot is None or snapshot[0] is not conn:
            return {}
        _, at, figures = snapshot
        figures = dict(figures)
        figures["python_version"] = figures.pop("python", None)
        figures["status_age_seconds"] = round(time.monotonic() - at, 3)
        return figures

    async def _figures_changed(self) -> None:
        """A model was loaded or unloaded: fetch the worker's figures now (one quick
        round trip, answered by its reading thread), so that a status right after
        shows them without waiting on the worker."""
        conn = self._conn
        if conn is None or not conn.alive:
            return
        self._status_of = conn
        self._status_task = asyncio.ensure_future(self._fetch_status(conn))
        await asyncio.wait({self._status_task}, timeout=FIGURES_WAIT)

    async def _fetch_status(self, conn: WorkerProcess) -> None:
        try:
            reply, _ = await self._ask(conn, ops.request_header(ops.Status()),
                                       self.request_timeout)
        except (asyncio.TimeoutError, WorkerError):
            return
        reply.pop("id", None)
        if "error" not in reply:
            self._snapshot = (conn, time.monotonic(), reply)

    @staticmethod
    async def _ask(conn: WorkerProcess, header: dict[str, Any], timeout: float
                   ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """One call to ``conn``'s worker outside the requests (a heartbeat, a status):
        not counted as use, never starting a worker; ``asyncio.TimeoutError`` after
        ``timeout`` seconds."""
        rid, fut = await conn.send(header)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            conn.pending.pop(rid, None)


#: Seconds :meth:`ModelWorker.status` waits for the worker's own figures before it
#: answers with the last ones the worker gave: monitoring never waits on the worker.
STATUS_WAIT = 0.05
#: Seconds a load or unload waits for the worker's new figures before it returns.
FIGURES_WAIT = 5.0
