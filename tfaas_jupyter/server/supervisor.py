"""Supervise the model worker process from the Jupyter server (asyncio, no TensorFlow).

TensorFlow never runs in the server's Python: :class:`ModelWorker` starts
``tfaas_jupyter/worker`` in a subprocess (possibly another interpreter, e.g. the LCG
Python of a SWAN kernel), talks to it over a socketpair with the framing of
:mod:`tfaas_jupyter.worker.wire`, restarts it lazily after a crash, and kills it when a
request hangs. The worker starts on first use and stops after ``idle_timeout`` seconds
without calls, so a server that serves no model runs no TensorFlow.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..worker.wire import ErrorKind, FrameChannel, ProtocolError, write_frame_async
from .errors import WorkerError
from .modelref import ModelRef
from .shm import worker_frame
from .timing import MODEL_SECONDS

__all__ = [
    "WorkerError",
    "WorkerUnavailable",
    "WorkerCrashed",
    "WorkerTimeout",
    "ModelError",
    "ModelTooBig",
    "ModelRef",
    "ModelWorker",
    "ColdStart",
    "COLD_START",
    "kernelspec_worker",
    "WORKER_DIR",
    "BOOTSTRAP",
]

#: The worker package's directory, loaded by path in the worker's interpreter.
WORKER_DIR = str(Path(__file__).resolve().parent.parent / "worker")

#: Run with ``python -c``: import ``WORKER_DIR`` as the top-level package ``tfaas_worker``
#: (tfaas_jupyter need not be installed there) and run its main. The missing-package check
#: comes first so the error names TensorFlow rather than whatever import fails first.
BOOTSTRAP = """\
import sys, importlib.util as u
if sys.path and sys.path[0] in ('', '.'):
    del sys.path[0]
d = sys.argv[1]
miss = [m for m in ('tensorflow', 'numpy') if u.find_spec(m) is None]
if miss:
    sys.stderr.write('tfaas-worker-fatal: %s not installed for %s\\n'
                     % (' and '.join({'tensorflow': 'TensorFlow'}.get(m, m) for m in miss)
                        + (' is' if len(miss) == 1 else ' are'), sys.executable))
    sys.exit(3)
s = u.spec_from_file_location('tfaas_worker', d + '/__init__.py', submodule_search_locations=[d])
m = u.module_from_spec(s)
sys.modules['tfaas_worker'] = m
s.loader.exec_module(m)
import tfaas_worker.main
sys.exit(tfaas_worker.main.main(sys.argv[2:]))
"""

FATAL_PREFIX = "tfaas-worker-fatal:"
_SOCK_BUF = 4 << 20


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


#: The cold start the current request went through, if any (set by
#: :meth:`ModelWorker.load`; a handler turns it into a ``Server-Timing`` header).
COLD_START: contextvars.ContextVar[ColdStart | None] = contextvars.ContextVar(
    "tfaas_cold_start", default=None
)

#: Run with ``python -c`` in the worker's interpreter: the installed TensorFlow and
#: Keras versions from package metadata, without importing either (a few ms).
VERSIONS_PROBE = """\
import json, importlib.metadata as m
def v(*names):
    for n in names:
        try:
            return m.version(n)
        except Exception:
            pass
print(json.dumps({'tensorflow': v('tensorflow', 'tensorflow-cpu', 'tensorflow-gpu',
                                  'tf-nightly', 'tensorflow-intel', 'tensorflow-macos'),
                  'keras': v('keras')}))
"""


def _exit_phrase(rc: int | None) -> str:
    """How a process ended, as a verb phrase ("exited with code 3", "was killed by ...")."""
    if rc is None:
        return "stopped responding"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        msg = f"was killed by {name}"
        if -rc == signal.SIGKILL:
            msg += " (most likely the system ran out of memory: the model or batch may be too big)"
        return msg
    return f"exited with code {rc}"


def _describe_exit(rc: int | None, pid: int | None) -> str:
    who = f"The model worker (pid {pid})" if pid else "The model worker"
    return f"{who} {_exit_phrase(rc)}"


#: stderr lines that are TensorFlow's chatter (banners, INFO and W logs of its C++ and
#: Python sides), not worth quoting in an error nor logging above DEBUG
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IW]\d{4} |To enable the following"
    r"|\S+ \S+: [IW] tensorflow/|(INFO|WARNING):(tensorflow|absl):|oneDNN custom operations"
    # no GPU here, as TensorFlow says at error level on every start of a CPU machine
    r"|E\d{4} .*(failed call to cuInit|cuda_platform|cuda_diagnostics))"
)


class _Conn:
    """One worker process and its channel (a new one after each restart)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        #: the channel to the worker (set once connected): replies reach
        #: :meth:`on_frame` as they arrive, frames go out with ``write_frame_async``
        self.writer: FrameChannel | None = None
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], list[np.ndarray]]]] = {}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=30)
        self.tasks: list[asyncio.Task[Any]] = []
        self.dead: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        #: Why we killed it ourselves (timeout, stop); None if it died on its own.
        self.kill_reason: str | None = None

    def on_frame(self, header: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """A reply: resolve its request's future (by id), in the channel's callback."""
        fut = self.pending.pop(header.get("id"), None)  # type: ignore[arg-type]
        if fut is not None and not fut.done():
            fut.set_result((header, arrays))

    @property
    def alive(self) -> bool:
        """Usable for new requests: not dead, and not being killed by us (a request
        sent to a worker we just killed for a timeout would fail with it)."""
        return (self.kill_reason is None and not self.dead.done()
                and self.proc.returncode is None)

    def fatal_line(self) -> str | None:
        for line in reversed(self.stderr_tail):
            if line.startswith(FATAL_PREFIX):
                return line[len(FATAL_PREFIX):].strip()
        return None

    def kill(self, reason: str) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass


#: Parts of a variable's name that say it holds a credential (upper-cased match).
_SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD")


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment minus every credential: a model's graph can read its
    process's environment, so the worker never gets Jupyter's or the hub's tokens."""
    return {
        k: v for k, v in environ.items()
        if not k.upper().startswith("JPY_")
        and not any(part in k.upper() for part in _SECRET_NAME_PARTS)
    }


class ModelWorker:
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
        self._conn: _Conn | None = None
        self._starting: asyncio.Future[_Conn] | None = None
        self._ids = itertools.count(1)
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
        self._last_cold_start: ColdStart | None = None
        #: TensorFlow and Keras versions of the worker's interpreter, once known.
        self._versions: dict[str, str | None] | None = None
        self._versions_task: asyncio.Future[dict[str, str | None]] | None = None

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
        if old is not None and old.proc.returncode is None:
            old.kill_reason = old.kill_reason or "event loop changed"
            try:
                os.kill(old.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            # asyncio's child watcher (a thread, or pidfd on the old loop) reaps it;
            # reap here too in case that loop is gone.
            try:
                os.waitpid(old.proc.pid, os.WNOHANG)
            except OSError:
                pass
        if self._state in ("running", "starting"):
            self._state = "stopped"

    async def _ensure(self) -> _Conn:
        self._adopt_loop()
        c = self._conn
        if c is not None and c.alive:
            return c
        if self._starting is None or self._starting.done():
            now = time.monotonic()
            if self._failures and now < self._retry_at:
                raise WorkerUnavailable(
                    f"{self._last_error} (next attempt in {self._retry_at - now:.0f} s)"
                )
            self._starting = asyncio.ensure_future(self._start())
        # shield: one caller being cancelled must not abort the start others wait for
        return await asyncio.shield(self._starting)

    async def _start(self) -> _Conn:
        self._state = "starting"
        began = time.monotonic()
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
        self.log.info("model worker started in %.1f s (pid %s, %s)",
                      self._last_start_seconds, conn.proc.pid, self.python)
        return conn

    async def _spawn(self) -> _Conn:
        parent, child = socket.socketpair()
        for s in (parent, child):
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    s.setsockopt(socket.SOL_SOCKET, opt, _SOCK_BUF)
                except OSError:
                    pass
        argv = [self.python, "-c", BOOTSTRAP, WORKER_DIR, "--fd", str(child.fileno()),
                "--cache-size", str(self.cache_size), "--parent-pid", str(os.getpid()),
                "--memory-limit", str(max(0, int(self.memory_limit)))]
        if self.threads:
            argv += ["--threads", str(self.threads)]
        if self.busy_poll > 0:
            argv += ["--poll-us", str(round(self.busy_poll * 1e6))]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(child.fileno(),),
                env=self.env,
                # Ctrl-C in the server's terminal must not hit the worker directly.
                start_new_session=True,
            )
        except OSError as e:
            parent.close()
            raise WorkerUnavailable(
                f"Cannot run the model worker's Python {self.python}: {e.strerror or e}"
            ) from None
        finally:
            child.close()
        conn = _Conn(proc)
        try:
            _, conn.writer = await asyncio.get_running_loop().create_connection(
                lambda: FrameChannel(conn.on_frame, lambda error: self._on_closed(conn, error)),
                sock=parent)
        except BaseException:
            parent.close()
            proc.kill()
            await proc.wait()
            raise
        conn.tasks = [
            asyncio.ensure_future(self._pump(conn, proc.stderr, logging.WARNING, tail=True)),
            asyncio.ensure_future(self._pump(conn, proc.stdout, logging.DEBUG, tail=False)),
        ]
        try:
            await asyncio.wait_for(self._roundtrip(conn, {"op": "ping"}), self.start_timeout)
        except asyncio.TimeoutError:
            conn.kill("start timeout")
            await self._reap(conn)
            raise WorkerUnavailable(
                f"The model worker ({self.python}) did not answer within "
                f"{self.start_timeout:g} s of starting{self._tail(conn)}"
            ) from None
        except WorkerError:
            await self._reap(conn)
            fatal = conn.fatal_line()
            rc = conn.proc.returncode
            if fatal:
                msg = f"The model worker cannot start: {fatal}"
            else:
                msg = (f"The model worker ({self.python}) failed to start "
                       f"({_exit_phrase(rc)}){self._tail(conn)}")
            raise WorkerUnavailable(msg) from None
        except BaseException:
            conn.kill("start cancelled")
            await self._reap(conn)
            raise
        return conn

    @staticmethod
    def _tail(conn: _Conn) -> str:
        lines = [ln for ln in conn.stderr_tail if ln.strip() and not _NOISE.match(ln)][-5:]
        return (": " + " | ".join(lines)) if lines else ""

    async def _pump(self, conn: _Conn, stream: asyncio.StreamReader | None, level: int,
                    tail: bool) -> None:
        """Forward the worker's stdout/stderr lines to the log (TF prints there): its
        chatter at DEBUG, other lines at ``level`` (stderr: WARNING, stdout: DEBUG)."""
        if stream is None:
            return
        pid = conn.proc.pid
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the limit: skip the chunk
                continue
            except (OSError, asyncio.IncompleteReadError):
                return
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if tail:
                conn.stderr_tail.append(text)
            self.log.log(logging.DEBUG if _NOISE.match(text) else level,
                         "[worker %s] %s", pid, text)

    def _on_closed(self, conn: _Conn, error: BaseException | None) -> None:
        """The channel ended (EOF, or why): fail its pending requests once the process
        is gone (:meth:`_on_dead`)."""
        if isinstance(error, ProtocolError):
            self.log.error("model worker protocol error: %s", error)
            conn.kill("protocol error")
        conn.tasks.append(asyncio.ensure_future(self._on_dead(conn)))

    async def _on_dead(self, conn: _Conn) -> None:
        if conn.dead.done():
            return
        rc: int | None
        try:
            rc = await asyncio.wait_for(asyncio.shield(conn.proc.wait()), 5.0)
        except asyncio.TimeoutError:
            conn.kill("channel closed")  # channel closed but process lingering
            try:
                rc = await asyncio.wait_for(asyncio.shield(conn.proc.wait()), 10.0)
            except asyncio.TimeoutError:  # never seen; do not hang the callers on it
                rc = conn.proc.returncode
        # let the stderr pump drain so the tail holds the last words
        await asyncio.wait(conn.tasks[:2], timeout=1.0)
        if conn.kill_reason is not None:
            msg = f"The model worker (pid {conn.proc.pid}) was stopped ({conn.kill_reason})"
        else:
            msg = _describe_exit(rc, conn.proc.pid) + self._tail(conn)
            self._last_error = msg
            if self._conn is conn:
                self.log.error("%s", msg)
        if self._conn is conn:
            self._stopped_reason = conn.kill_reason or "crashed"
        if not conn.dead.done():
            conn.dead.set_result(msg)
        for fut in list(conn.pending.values()):
            if not fut.done():
                fut.set_exception(WorkerCrashed(msg))
        conn.pending.clear()
        try:
            conn.writer.close()
        except Exception:
            pass
        if self._conn is conn:
            self._state = "stopped"

    async def _reap(self, conn: _Conn) -> None:
        """Wait for the process and the channel teardown (never leaves a zombie)."""
        if conn.proc.returncode is None:
            conn.kill(conn.kill_reason or "cleanup")
        try:
            await asyncio.wait_for(asyncio.shield(conn.proc.wait()), 10.0)
            await asyncio.wait_for(asyncio.shield(conn.dead), 20.0)
        except asyncio.TimeoutError:
            self.log.warning("model worker (pid %s) teardown is slow", conn.proc.pid)

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
        await self._stop_conn(conn, reason)

    async def _stop_conn(self, conn: _Conn, reason: str) -> None:
        """End one worker process gracefully (EOF), killing it if it lingers."""
        if conn.kill_reason is None:
            conn.kill_reason = reason
        if conn.proc.returncode is None:
            try:
                conn.writer.close()
            except Exception:
                pass
            try:
                await asyncio.wait_for(asyncio.shield(conn.proc.wait()), 5.0)
            except asyncio.TimeoutError:
                conn.kill(reason)
        try:
            await asyncio.wait_for(asyncio.shield(conn.proc.wait()), 10.0)
        except asyncio.TimeoutError:
            self.log.warning("model worker (pid %s) did not exit", conn.proc.pid)
        try:
            await asyncio.wait_for(asyncio.shield(conn.dead), 10.0)
        except asyncio.TimeoutError:
            pass
        for t in conn.tasks:
            if not t.done():
                t.cancel()

    def _cancel_idle_watch(self) -> None:
        task, self._idle_task = self._idle_task, None
        if task is not None and not task.done() and task is not _current_task():
            try:
                task.cancel()
            except RuntimeError:  # its event loop is closed: it will never run again
                pass

    async def _stop_when_idle(self, conn: _Conn) -> None:
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
        await self._stop_conn(conn, f"idle for {self.idle_timeout:g} s")

    # ------------------------------------------------------------------ requests

    async def _roundtrip(self, conn: _Conn, header: dict[str, Any],
                         arrays: Sequence[np.ndarray] = ()
                         ) -> tuple[dict[str, Any], list[np.ndarray]]:
        rid = next(self._ids)
        fut: asyncio.Future[tuple[dict[str, Any], list[np.ndarray]]] = (
            asyncio.get_running_loop().create_future()
        )
        if conn.dead.done():
            raise WorkerCrashed(conn.dead.result())
        conn.pending[rid] = fut
        try:
            try:
                await write_frame_async(conn.writer, {**header, "id": rid}, arrays)
            except (TypeError, ValueError) as e:
                # nothing was written: an object-dtype array or a non-JSON param
                raise ModelError(f"The request cannot be sent to the model worker: {e}",
                                 ErrorKind.BAD_INPUT) from None
            except (OSError, RuntimeError):
                # the channel broke: the read loop reports why
                await asyncio.shield(conn.dead)
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

    def _poll_answers(self, conn: _Conn) -> None:
        """Keep the event loop polling its sockets, one turn after another, while an
        answer is awaited, for at most :attr:`busy_poll` seconds after the last send.

        A loop with nothing to do sleeps in the kernel, and the answer then pays for
        waking the server's CPU: 0.1-0.2 ms on a virtual machine whose idle CPUs halt,
        more than a small model's call. One callback per loop turn keeps the loop's
        poll at a zero timeout instead; a busy loop (many clients) turns anyway, and an
        answer slower than the window (the last one was) is not polled for at all.
        """
        if conn.pending and time.perf_counter() < self._poll_until:
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

    async def load(self, model: ModelRef) -> dict[str, Any]:
        """Make sure the worker holds ``model`` (loading it if needed, within the load
        budget); returns its signature ``{"inputs": [...], "outputs": [...]}``.

        When the call had to start the worker or load the model, it is a cold start:
        recorded in :data:`COLD_START` for the current request and in the status.
        """
        self._adopt_loop()
        stopped = not self.running
        began = time.monotonic()
        if stopped:
            await self._ensure()
        started = time.monotonic()
        reply, _ = await self._request({"op": "load", **model.load_request()},
                                       timeout=self.request_timeout + self.load_timeout)
        if stopped or reply.get("loaded"):
            timing = ColdStart(model.key, started - began if stopped else 0.0,
                               time.monotonic() - started)
            COLD_START.set(timing)
            if stopped:
                self._last_cold_start = timing
        return {"inputs": reply["inputs"], "outputs": reply["outputs"]}

    async def predict(self, model: ModelRef, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run ``model`` on one array per input (signature order, shaped ``[rows, ...]``).

        Returns one read-only array per output, in output order. The request names the
        model by its key only; when the worker does not hold it (evicted, or restarted)
        it is loaded and the request sent once more.
        """
        self._adopt_loop()
        if not self.running:  # a new worker holds no model: load it first (a cold start)
            await self.load(model)
        # inputs read from a client's shared memory region go as where to find them
        regions, arrays = worker_frame(list(inputs))
        header = {"op": "predict", "key": model.key, **regions}
        try:
            reply, out = await self._request(header, arrays)
        except ModelError as exc:
            if exc.kind is not ErrorKind.NOT_LOADED:
                raise
            await self.load(model)
            reply, out = await self._request(header, arrays)
        MODEL_SECONDS.set(reply.get("model_s") or 0.0)
        return out

    async def unload(self, prefix: str) -> None:
        """Evict every cached model whose key starts with ``prefix``.

        A no-op when the worker is not running (nothing is cached then).
        """
        self._adopt_loop()
        c = self._conn
        if c is None or not c.alive:
            return
        await self._request({"op": "unload", "prefix": prefix})

    @property
    def running(self) -> bool:
        """A worker process is up and usable from this event loop."""
        c = self._conn
        return c is not None and c.alive and self._loop is _running_loop()

    def summary(self) -> str:
        """The worker's state in a few words, as the page, widget and magics show it."""
        state = self.state
        if state == "running":
            return f"running (pid {self.pid})"
        if state == "starting":
            return "starting"
        if state == "failed":
            return f"failed: {self.last_error}"
        if self._stopped_reason == "idle":
            return (f"not running (stopped after {self.idle_timeout:g} s idle; "
                    "starts on first use)")
        return "not running (starts on first use)"

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
        proc = await asyncio.create_subprocess_exec(
            self.python, "-c", VERSIONS_PROBE, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        doc = json.loads(out.decode().strip().splitlines()[-1])
        return {"tensorflow": doc.get("tensorflow"), "keras": doc.get("keras")}

    async def status(self, *, start: bool = False) -> dict[str, Any]:
        """Supervisor state merged with the worker's own status when it is running.

        Keys: ``state``, ``summary``, ``pid``, ``starts``, ``restarts``, ``last_error``,
        ``python`` (the worker's interpreter path), ``idle_timeout``, ``idle_seconds``
        (since the last call; ``None`` when not running), ``last_start_seconds``,
        ``last_cold_start`` (the last start + first load), ``memory_limit``,
        ``busy_poll_us``; from the
        worker when it is running: ``threads``, ``loaded``, ``cache_size``, ``rss`` and
        ``model_sizes`` (bytes, estimated). ``tensorflow`` and ``keras`` come from the
        worker, or from package metadata when it is not running. A stopped worker is
        started first only with ``start=True``.
        """
        info: dict[str, Any] = {
            "tensorflow": None, "keras": None, "python_version": None,
            "threads": self.threads, "loaded": [], "cache_size": self.cache_size,
            "rss": None, "model_sizes": {},
        }
        self._adopt_loop()
        if start or self.running:
            try:
                reply, _ = await self._request({"op": "status"}, use=start)
                reply.pop("id", None)
                info.update(reply)
                info["python_version"] = info.pop("python", None)
                if info.get("tensorflow"):
                    self._versions = {"tensorflow": info["tensorflow"], "keras": info["keras"]}
            except WorkerError as e:
                info["error"] = e.message
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
        )
        return info

    async def export(self, model: ModelRef, target: str) -> dict[str, Any]:
        """Write the model as a SavedModel with ``serving_default`` at ``target``."""
        reply, _ = await self._request(
            {"op": "export", "target": target, **model.load_request()},
            timeout=self.request_timeout + self.load_timeout,
        )
        return {"inputs": reply["inputs"], "outputs": reply["outputs"]}


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


def kernelspec_worker(name: str) -> tuple[str, dict[str, str]]:
    """(python executable, env) of the Jupyter kernelspec ``name``.

    For SWAN: the kernel's (LCG) Python has TensorFlow while the server's has not. The
    executable is the spec's ``argv[0]`` (resolved on the spec's PATH if not absolute);
    env is ``os.environ`` updated with the spec's ``env``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise WorkerUnavailable(f"There is no Jupyter kernel named '{name}'") from None
    if not spec.argv:
        raise WorkerUnavailable(f"Kernel '{name}' has an empty argv")
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (spec.env or {}).items()})
    python = spec.argv[0]
    if not os.path.isabs(python):
        found = shutil.which(python, path=env.get("PATH"))
        if found is None:
            raise WorkerUnavailable(
                f"Kernel '{name}' runs '{python}', which is not on its PATH"
            )
        python = found
    return python, env
