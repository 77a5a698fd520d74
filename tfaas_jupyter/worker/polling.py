"""The worker's side of busy polling: look for the next request before sleeping.

An idle CPU of a virtual machine halts, and waking it when a frame arrives costs
0.05-0.1 ms, as much as a small model's whole call; one client sending its rows one
request at a time pays it on every row. So after the last running prediction ends,
the reading lane polls the channel for up to ``window`` seconds, and sleeps in
``recv`` only when nothing came.

It polls only while no prediction runs: a polling thread holds the GIL between its
polls, and a running prediction needs the GIL for its Python part. While predictions
run, the reading lane sleeps until a frame arrives or the last of them ends (that
lane wakes it through a pipe), then polls. And it polls only while polling pays:
when the last frame that found the worker idle came within the window. A worker whose
requests come seldom (or only while it is busy, as under heavy load) never polls.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time

#: Give the CPU to another process waiting for it, if any (a no-op elsewhere).
yield_cpu = getattr(os, "sched_yield", lambda: None)


class FramePoller:
    """Waits for the channel's next frame, polling first (see the module).

    :meth:`wait` and :meth:`frame_read` are called by the reading lane only;
    :meth:`sleep_while_busy`, :meth:`predictions_ended` and the caller's decision
    whether predictions run happen under the caller's lock that guards their count,
    so a wake-up is never lost. (The estimate of whether polling pays is read and
    written from both sides without that lock: a race can only skew one estimate.)
    """

    def __init__(self, sock: socket.socket, window: float) -> None:
        self.window = window
        self._sock_fd = sock.fileno()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poll = select.poll()
        self._poll.register(self._sock_fd, select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self._sock_poll = select.poll()
        self._sock_poll.register(self._sock_fd, select.POLLIN)
        #: the reading lane sleeps until predictions end (set under the caller's lock;
        #: cleared, and the wake-up written, under ``_wake_lock``)
        self._sleeping = False
        self._wake_lock = threading.Lock()
        #: when the last prediction ended (perf_counter), while no frame came since
        self._idle_since: float | None = None
        #: whether the last frame that found the worker idle came within the window
        self._pays = True

    def predictions_ended(self) -> None:
        """The last running prediction ended (under the caller's lock)."""
        self._idle_since = time.perf_counter()
        with self._wake_lock:
            if self._sleeping:
                self._sleeping = False
                os.write(self._wake_w, b"\0")

    def frame_read(self) -> None:
        """A frame was read: learn whether polling would have caught it."""
        if self._idle_since is not None:
            self._pays = time.perf_counter() - self._idle_since <= self.window
            self._idle_since = None

    def sleep_while_busy(self) -> None:
        """Mark the reading lane as waiting for predictions to end (under the lock)."""
        self._sleeping = True

    def wait(self, busy: bool) -> None:
        """Return when the channel is readable, or when the lane should sleep in
        ``recv``. ``busy``: predictions were running when the lane decided (under the
        lock, where it also called :meth:`sleep_while_busy`)."""
        if busy:
            ready = self._poll.poll()
            with self._wake_lock:
                # Woken by a frame while predictions still run: no longer sleeping, so
                # their end writes no wake-up that would cut the next sleep short.
                # Woken by their end (or both): the wake-up is drained here.
                woken = not self._sleeping
                self._sleeping = False
            if woken:
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
            if any(fd == self._sock_fd for fd, _ in ready):
                return
        if not self._pays:
            return
        deadline = time.perf_counter() + self.window
        poll = self._sock_poll.poll
        while not poll(0) and time.perf_counter() < deadline:
            # let a process waiting for this CPU run: the server, when both share a
            # CPU (the other one taken), else waits for the whole window before it
            # can send the frame polled for
            yield_cpu()

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)
