"""One model worker process and its channel: the server's side of the wire.

The frames themselves (header, arrays) are :mod:`tfaas_jupyter.worker.wire`, shared
with the worker, whose side of the channel is its ``BlockingChannel``; this module is
the asyncio side, which only the server uses (:class:`FrameChannel`), and the state
of one process (:class:`WorkerProcess`). Launching it is
:mod:`tfaas_jupyter.server.launch`; when to start, stop or restart it is the
supervisor's (:mod:`tfaas_jupyter.server.supervisor`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import signal
import socket
from typing import Any, Sequence

import numpy as np

from ..worker.wire import (
    _LEN,
    _READ_CHUNK,
    JOIN_LIMIT,
    MAX_HEADER,
    ErrorKind,
    ProtocolError,
    Sizes,
    arrays_from_buffers,
    frame_parts,
    parse_header,
    uninitialized,
)
from .errors import ModelError, WorkerCrashed
from .launch import FATAL_PREFIX, NOISE, describe_exit
from .sysinfo import oom_kills


async def write_frame_async(
    writer: FrameChannel, header: dict[str, Any],
    arrays: Sequence[np.ndarray] = (),
) -> None:
    """Write one frame and wait for the transport to drain.

    All the ``write`` calls happen synchronously before the first ``await``, so frames
    written concurrently by several coroutines never interleave.
    """
    for part in frame_parts(header, arrays):
        writer.write(part)
    await writer.drain()


class FrameChannel(asyncio.BufferedProtocol):
    """The asyncio side of a channel: frames are parsed as their bytes arrive and each
    is handed to ``on_frame(header, arrays)`` at once, in the event loop's callback
    (no stream, no task, no extra turn of the loop); ``on_closed(error)`` is called
    once when the connection ends (``None``, or why: an ``OSError`` or a
    :class:`ProtocolError`, after which the transport is closed).

    Small frames are read into one buffer; an array bigger than ``JOIN_LIMIT`` is
    received straight into its own memory (copied once, from the socket). The arrays
    handed over are read-only. Writing is ``write`` + ``drain`` (flow control), like a
    ``StreamWriter``, so :func:`write_frame_async` takes either.
    """

    def __init__(self, on_frame: Any, on_closed: Any) -> None:
        self._on_frame = on_frame
        self._on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray(_READ_CHUNK)
        self._start = 0  # unread bytes are _buf[_start:_end]
        self._end = 0
        self._header: dict[str, Any] | None = None  # of the frame being read
        self._sizes: Sizes = []
        self._buffers: list[bytes | np.ndarray] = []
        self._big: np.ndarray | None = None  # a big array being received in place
        self._big_got = 0
        self._paused = False
        self._drained: list[asyncio.Future[None]] = []
        self._lost = False

    # reading

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._big is not None:
            return self._big.data[self._big_got:]
        if len(self._buf) - self._end < 4096:
            held = self._end - self._start
            if self._start:  # move the unread bytes to the front
                self._buf[:held] = self._buf[self._start:self._end]
                self._start, self._end = 0, held
            if len(self._buf) - held < 4096:  # a big header, or small arrays
                self._buf.extend(bytes(len(self._buf)))
        return memoryview(self._buf)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._big is not None:
            self._big_got += nbytes
        else:
            self._end += nbytes
        try:
            self._parse()
        except ProtocolError as e:
            self._close(e)

    def _parse(self) -> None:
        buf = self._buf
        while True:
            if self._header is None:
                held = self._end - self._start
                if held < _LEN.size:
                    break
                (n,) = _LEN.unpack_from(buf, self._start)
                if n > MAX_HEADER:
                    raise ProtocolError(f"frame header length {n} is too large")
                if held < _LEN.size + n:
                    break
                begin = self._start + _LEN.size
                self._header, self._sizes = parse_header(bytes(buf[begin:begin + n]))
                self._start = begin + n
                self._buffers = []
            while len(self._buffers) < len(self._sizes):
                nbytes = self._sizes[len(self._buffers)][2]
                if nbytes <= JOIN_LIMIT:
                    if self._end - self._start < nbytes:
                        return
                    self._buffers.append(bytes(buf[self._start:self._start + nbytes]))
                    self._start += nbytes
                    continue
                if self._big is None:
                    self._big = uninitialized(nbytes)
                    took = min(nbytes, self._end - self._start)
                    self._big[:took] = buf[self._start:self._start + took]
                    self._start += took
                    self._big_got = took
                if self._big_got < nbytes:
                    return
                self._buffers.append(self._big)
                self._big = None
            arrays = arrays_from_buffers(self._sizes, self._buffers)
            for a in arrays:
                a.flags.writeable = False
            header, self._header, self._buffers = self._header, None, []
            self._on_frame(header, arrays)
        if self._start == self._end:
            self._start = self._end = 0

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and (self._header is not None or self._end > self._start):
            exc = EOFError("channel closed in the middle of a frame")
        self._close(exc)

    def _close(self, error: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        for waiter in self._drained:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("the channel is closed"))
        self._drained.clear()
        if self.transport is not None:
            self.transport.close()
        self._on_closed(error)

    # writing

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drained:
            if not waiter.done():
                waiter.set_result(None)
        self._drained.clear()

    def write(self, data: bytes | memoryview) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        if self._lost or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("the channel is closed")
        if self._paused:
            waiter = asyncio.get_running_loop().create_future()
            self._drained.append(waiter)
            await waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class WorkerProcess:
    """One worker process and its channel (a new one after each restart): the replies
    it owes (by request id), the last lines of its stderr, and how it ended."""

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
        self._ids = itertools.count(1)
        #: Whether this process was ever asked to load a model: a new worker holds none,
        #: so its first prediction is preceded by its model's load.
        self.has_loaded = False
        #: Its cgroup's count of out-of-memory kills when it started (None: unknown).
        self.oom_kills: int | None = None
        #: Killed as hung and replaced: the requests it held are sent to the new one.
        self.replaced = False

    async def connect(self, sock: socket.socket, on_closed: Any, log: logging.Logger) -> None:
        """Open the channel over ``sock`` (the server's end of the socketpair) and forward
        the process's output to ``log``; ``on_closed(error)`` when the channel ends."""
        try:
            _, self.writer = await asyncio.get_running_loop().create_connection(
                lambda: FrameChannel(self.on_frame, on_closed), sock=sock)
        except BaseException:
            sock.close()
            self.proc.kill()
            await self.proc.wait()
            raise
        self.tasks = [
            asyncio.ensure_future(self.pump(self.proc.stderr, logging.WARNING, True, log)),
            asyncio.ensure_future(self.pump(self.proc.stdout, logging.DEBUG, False, log)),
        ]

    async def send(self, header: dict[str, Any], arrays: Sequence[np.ndarray] = ()
                   ) -> tuple[int, asyncio.Future[tuple[dict[str, Any], list[np.ndarray]]]]:
        """Write one request; answers its id and the future of its reply (the caller
        drops ``pending[id]`` when done with it)."""
        rid = next(self._ids)
        fut: asyncio.Future[tuple[dict[str, Any], list[np.ndarray]]] = (
            asyncio.get_running_loop().create_future()
        )
        if self.dead.done():
            raise WorkerCrashed(self.dead.result())
        self.pending[rid] = fut
        assert self.writer is not None, "a request before the worker's channel is open"
        try:
            await write_frame_async(self.writer, {**header, "id": rid}, arrays)
        except (TypeError, ValueError) as e:
            self.pending.pop(rid, None)
            # nothing was written: an object-dtype array or a non-JSON param
            raise ModelError(f"The request cannot be sent to the model worker: {e}",
                             ErrorKind.BAD_INPUT) from None
        except (OSError, RuntimeError):
            # the channel broke: the read loop reports why, and fails the future
            await asyncio.shield(self.dead)
        except BaseException:  # cancelled while writing
            self.pending.pop(rid, None)
            raise
        return rid, fut

    async def wait_ended(self) -> str:
        """Once the channel has closed: wait for the process to end (killing it if it
        lingers), fail the replies it owes, and answer why it ended."""
        rc: int | None
        try:
            rc = await asyncio.wait_for(asyncio.shield(self.proc.wait()), 5.0)
        except asyncio.TimeoutError:
            self.kill("channel closed")  # channel closed but process lingering
            try:
                rc = await asyncio.wait_for(asyncio.shield(self.proc.wait()), 10.0)
            except asyncio.TimeoutError:  # never seen; do not hang the callers on it
                rc = self.proc.returncode
        # let the stderr pump drain so the tail holds the last words
        await asyncio.wait(self.tasks[:2], timeout=1.0)
        if self.kill_reason is not None:
            msg = f"The model worker (pid {self.proc.pid}) was stopped ({self.kill_reason})"
        else:
            msg = describe_exit(rc, self.proc.pid, self.oom_killed()) + self.tail()
        if not self.dead.done():
            self.dead.set_result(msg)
        for fut in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(WorkerCrashed(msg))
        self.pending.clear()
        try:
            self.writer.close()  # type: ignore[union-attr]
        except Exception:
            pass
        return msg

    def oom_killed(self) -> bool:
        """Whether the kernel's out-of-memory killer ended a process of our cgroup
        since this one started (the only sign we trust that it ran out of memory)."""
        if self.oom_kills is None:
            return False
        now = oom_kills()
        return now is not None and now > self.oom_kills

    def abandon(self, reason: str) -> None:
        """Kill the process at once and reap it if it has ended, without its event loop
        (a worker started from a loop that no longer runs)."""
        if self.proc.returncode is not None:
            return
        self.kill_reason = self.kill_reason or reason
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        # asyncio's child watcher (a thread, or pidfd on the old loop) reaps it;
        # reap here too in case that loop is gone.
        try:
            os.waitpid(self.proc.pid, os.WNOHANG)
        except OSError:
            pass

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

    def tail(self) -> str:
        """The last lines of its stderr worth quoting in an error (no TF chatter)."""
        lines = [ln for ln in self.stderr_tail if ln.strip() and not NOISE.match(ln)][-5:]
        return (": " + " | ".join(lines)) if lines else ""

    async def pump(self, stream: asyncio.StreamReader | None, level: int, tail: bool,
                   log: logging.Logger) -> None:
        """Forward the worker's stdout/stderr lines to the log (TF prints there): its
        chatter at DEBUG, other lines at ``level`` (stderr: WARNING, stdout: DEBUG)."""
        if stream is None:
            return
        pid = self.proc.pid
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
                self.stderr_tail.append(text)
            log.log(logging.DEBUG if NOISE.match(text) else level, "[worker %s] %s", pid, text)

    async def reap(self, log: logging.Logger) -> None:
        """Wait for the process and the channel teardown (never leaves a zombie)."""
        if self.proc.returncode is None:
            self.kill(self.kill_reason or "cleanup")
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), 10.0)
            await asyncio.wait_for(asyncio.shield(self.dead), 20.0)
        except asyncio.TimeoutError:
            log.warning("model worker (pid %s) teardown is slow", self.proc.pid)

    async def end(self, reason: str, log: logging.Logger) -> None:
        """End the process gracefully (EOF on its channel), killing it if it lingers."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.proc.returncode is None:
            try:
                self.writer.close()  # type: ignore[union-attr]
            except Exception:
                pass
            try:
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), 5.0)
            except asyncio.TimeoutError:
                self.kill(reason)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), 10.0)
        except asyncio.TimeoutError:
            log.warning("model worker (pid %s) did not exit", self.proc.pid)
        try:
            await asyncio.wait_for(asyncio.shield(self.dead), 10.0)
        except asyncio.TimeoutError:
            pass
        for t in self.tasks:
            if not t.done():
                t.cancel()

    def kill(self, reason: str) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
