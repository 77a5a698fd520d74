"""Model worker entry point: read request frames, run them, reply.

Started by :class:`tfaas_jupyter.server.supervisor.ModelWorker` as::

    python -c BOOTSTRAP <this directory> --fd N [--threads T] [--cache-size C]
                                                [--parent-pid P] [--memory-limit B]
                                                [--poll-us U]

where ``N`` is the worker's end of a socketpair (see :mod:`.wire` for the framing).
stdout/stderr are not the channel: TensorFlow prints there, the supervisor forwards
stderr to its log.

Requests are ``{"id": int, "op": str, ...}``, typed by :mod:`.ops` (one dataclass
per operation and per answer) and dispatched once on their type (:meth:`Worker.handle`);
each reply carries the request's ``id`` and either the op's answer or
``{"error": "<one line>", "kind": <wire.ErrorKind>}``. Replies may come out of order.
A ``predict`` names its model by key only, and answers ``not_loaded`` when the key is
not in the cache (evicted, or a new worker): the supervisor then sends ``load`` and
the prediction once more. So the params travel once per load, not with every
prediction.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

from . import ops
from .devices import GpuSettings
from .lru import Outgrown, OverBudget, freeze_heap, release_memory, rss_bytes

#: The GIL switch interval while a model loads (see :meth:`Worker._loading`).
LOAD_SWITCH_S = 0.0002

#: Written on stderr (one line) when the worker cannot start; the supervisor shows it.
FATAL_PREFIX = "tfaas-worker-fatal:"


def _set_pdeathsig() -> None:
    """Linux: get SIGKILLed when the parent dies, so no TF process outlives the server.

    Best effort (ctypes/libc may be unavailable); channel EOF is the portable fallback.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except Exception:
        pass


def _fatal(msg: str, code: int = 3) -> None:
    sys.stderr.write(f"{FATAL_PREFIX} {msg}\n")
    sys.stderr.flush()
    os._exit(code)


def _region_inputs(refs: Any, arrays: list[Any]) -> list[Any]:
    """A prediction's inputs with those in shared memory mapped (a region that cannot
    be read is the request's bad input, never the worker's end)."""
    from .loaders import InputError
    from .regions import RegionError, region_inputs

    try:
        return region_inputs(refs, arrays)
    except RegionError as exc:
        raise InputError(str(exc)) from None


@functools.lru_cache(maxsize=1)
def _keras_version() -> str | None:
    """Keras's installed version (package metadata, read once)."""
    try:
        from importlib.metadata import version

        return version("keras")
    except Exception:
        return None


class Worker:
    """Request dispatch and the bounded cache of loaded predictors."""

    def __init__(self, channel: Any, threads: int, cache_size: int,
                 memory_limit: int = 0, poller: Any = None, bare_rss: int = 0,
                 gpu_settings: GpuSettings | None = None) -> None:
        from .lru import LRU

        self.channel = channel
        self.threads = threads
        self.cache_size = cache_size
        self._lock = threading.Lock()  # guards the cache and _key_locks
        self._cache: LRU[str, Any] = LRU(cache_size, memory_limit=memory_limit)
        #: RSS of this worker when it started, before any model (the base of the budget)
        self.bare_rss = bare_rss
        self._key_locks: dict[str, threading.Lock] = {}
        # (sequence number, prefix) of recent unloads, so a load that was running while
        # its key got unloaded does not put the stale model back into the cache.
        self._unload_seq = 0
        self._recent_unloads: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=256
        )
        #: loads, exports and the other slow ops (predictions run on the lanes)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tfaas-req")
        # the lanes of :meth:`serve`
        self._read_lock = threading.Lock()  # held by the one lane reading the channel
        self._lanes_lock = threading.Lock()  # guards _predicting, _backlog, the end
        self._predicting = 0
        self._backlog: collections.deque[tuple[dict[str, Any], list[Any]]] = collections.deque()
        self._ended = threading.Event()
        self._end_error: BaseException | None = None
        #: a :class:`.polling.FramePoller` (None: the reading lane sleeps in ``recv``)
        self.poller = poller
        #: the GPU memory settings applied at the start (shown in the status)
        self.gpu_settings = gpu_settings or GpuSettings()
        #: seconds of each cached model's warm-up (by key)
        self._warmups: dict[str, float] = {}
        #: loads in progress, and the GIL switch interval to restore after them
        self._loads = 0
        self._switch_interval = sys.getswitchinterval()

    # ---------------------------------------------------------------- cache

    def get_predictor(self, key: str, path: str, fmt: str, params: dict[str, Any],
                      warmup: list[int] | None = None) -> Any:
        """The cached predictor for ``key``, loading it on a miss (and warming it up
        at each batch size of ``warmup`` before it enters the cache: see
        :mod:`.warmup`).

        Loads of one key are serialised by a per-key lock (no double load); different
        keys load concurrently.
        """
        from . import loaders

        with self._lock:
            p = self._cache.get(key)
            if p is not None:
                return p
            klock = self._key_locks.setdefault(key, threading.Lock())
        with klock:
            with self._lock:
                p = self._cache.get(key)
                seq = self._unload_seq
            if p is not None:
                return p
            before = rss_bytes()
            with self._loading():
                p = loaders.load(fmt, path, params)
                if warmup:
                    self._warm_up(key, p, params, warmup)
            # the heap the load freed is not the model's cost (no cycle collection: it
            # would stall the requests other models serve meanwhile)
            release_memory(collect=False)
            freeze_heap()  # the model lives as long as it is loaded
            try:
                self._admit(key, p, max(rss_bytes() - before, 0), seq)
            except (OverBudget, Outgrown):
                p = None  # the traceback keeps this frame: drop the model now
                release_memory()
                raise
            return p

    @contextlib.contextmanager
    def _loading(self) -> Iterator[None]:
        """While a model loads and warms up (mostly Python holding the GIL: the graph's
        import, the function's tracing), hand the GIL over every ``LOAD_SWITCH_S``
        instead of Python's 5 ms, so that predictions of loaded models served meanwhile
        are not held up by the load (each needs the GIL a few times per request)."""
        with self._lock:
            if self._loads == 0:
                self._switch_interval = sys.getswitchinterval()
                sys.setswitchinterval(LOAD_SWITCH_S)
            self._loads += 1
        try:
            yield
        finally:
            with self._lock:
                self._loads -= 1
                if self._loads == 0:
                    sys.setswitchinterval(self._switch_interval)

    def _warm_up(self, key: str, predictor: Any, params: dict[str, Any],
                 sizes: list[int]) -> None:
        """Run the warm-up batches and keep their time for the status."""
        from .loaders import InputError, ModelLoadError
        from .warmup import warm_up

        try:
            seconds = warm_up(predictor, params, sizes)
        except InputError as exc:
            raise ModelLoadError(f"the model fails on its warm-up batch: {exc}") from exc
        if seconds is not None:
            with self._lock:
                self._warmups[key] = seconds

    def _admit(self, key: str, predictor: Any, size: int, seq: int) -> None:
        """Cache a just-loaded model of ``size`` bytes, evicting others to stay within
        the memory limit; raises :class:`OverBudget` (nothing cached) if it cannot fit."""
        refusal: OverBudget | Outgrown | None = None
        evicted: list[str] = []
        with self._lock:
            if any(n > seq and key.startswith(prefix) for n, prefix in self._recent_unloads):
                return  # unloaded while it loaded: do not put the stale model back
            try:
                evicted = self._cache.fit(key, size, rss_bytes(), self.bare_rss)
            except (OverBudget, Outgrown) as e:
                refusal = e
            else:
                evicted += self._cache.put(key, predictor, size)
            for gone in evicted:
                self._warmups.pop(gone, None)
        if refusal is not None:
            del predictor
            raise refusal
        if evicted:
            release_memory()

    def unload(self, prefix: str) -> list[str]:
        with self._lock:
            self._unload_seq += 1
            self._recent_unloads.append((self._unload_seq, prefix))
            gone = [k for k in self._cache if k.startswith(prefix)]
            for k in gone:
                self._cache.pop(k)
                self._warmups.pop(k, None)
            for k in [k for k in self._key_locks if k.startswith(prefix)]:
                lk = self._key_locks[k]
                if not lk.locked():
                    del self._key_locks[k]
        if gone:  # hand the models' memory back now, not at the next collection
            release_memory()
        return gone

    def status(self) -> dict[str, Any]:
        """The worker's own figures: quick (answered by the reading lane, like a ping,
        so that monitoring gets them while every other thread is busy)."""
        import tensorflow as tf

        with self._lock:
            loaded = self._cache.keys()
            sizes = self._cache.sizes()
            warmups = {k: round(v, 4) for k, v in self._warmups.items() if k in loaded}
        return {
            "rss": rss_bytes(),
            "model_sizes": sizes,
            "memory_limit": self._cache.memory_limit,
            "bare_rss": self.bare_rss,
            "tensorflow": tf.__version__,
            "keras": _keras_version(),
            "python": sys.version,
            "pid": os.getpid(),
            "threads": self.threads,
            "loaded": loaded,
            "cache_size": self.cache_size,
            "warmup_seconds": warmups,
            **self._devices(loaded),
        }

    def _devices(self, loaded: list[str]) -> dict[str, Any]:
        """The status's devices and the device of each loaded model."""
        from .devices import default_device, devices_status

        device = default_device()
        return {"devices": devices_status(self.gpu_settings),
                "model_devices": {key: device for key in loaded}}

    # ---------------------------------------------------------------- requests

    def cached(self, key: str) -> Any:
        """The loaded predictor of ``key``; raises ``NotLoaded`` when it is not cached."""
        from .loaders import NotLoaded

        with self._lock:
            p = self._cache.get(key)
        if p is None:
            raise NotLoaded(f"model {key} is not loaded")
        return p

    def _predict(self, request: ops.Predict, arrays: list[Any]) -> tuple[Any, list[Any]]:
        predictor = self.cached(request.key)
        if request.regions is not None:  # inputs read in place from shared memory
            arrays = _region_inputs(request.regions, arrays)
        began = time.perf_counter()
        out_arrays = predictor.predict(arrays)
        # the time inside the model, for the request's Server-Timing header
        return ops.Predicted(time.perf_counter() - began), out_arrays

    def _load(self, request: ops.Load, arrays: list[Any]) -> tuple[Any, list[Any]]:
        with self._lock:
            held = request.key in self._cache
        # "loaded": this call loaded the model (a cold start), it was not cached
        metadata = self.get_predictor(request.key, request.path, request.format,
                                      request.params, request.warmup).metadata()
        with self._lock:
            warmup = self._warmups.get(request.key)
        return ops.Loaded(metadata["inputs"], metadata["outputs"], not held,
                          None if warmup is None else round(warmup, 4)), []

    def _export(self, request: ops.Export, arrays: list[Any]) -> tuple[Any, list[Any]]:
        from .export import export_savedmodel

        predictor = self.get_predictor(request.key, request.path, request.format,
                                       request.params)
        exported = export_savedmodel(predictor, request.target)
        return ops.Exported(exported["inputs"], exported["outputs"]), []

    def _unload(self, request: ops.Unload, arrays: list[Any]) -> tuple[Any, list[Any]]:
        return ops.Unloaded(self.unload(request.prefix)), []

    def _status(self, request: ops.Status, arrays: list[Any]) -> tuple[Any, list[Any]]:
        return self.status(), []

    def _pong(self) -> ops.Pong:
        rss = rss_bytes()
        if 0 < self._cache.memory_limit < rss:
            # over the budget: first hand back the free heap (what large batches leave
            # behind), so that the supervisor evicts or restarts only for memory in use
            release_memory(collect=False)
            rss = rss_bytes()
        return ops.Pong(rss, len(self._cache))

    def _ping(self, request: ops.Ping, arrays: list[Any]) -> tuple[Any, list[Any]]:
        return self._pong(), []

    #: The one dispatch of the worker's operations, on the request's type.
    _HANDLERS: dict[type, Any] = {
        ops.Predict: _predict, ops.Load: _load, ops.Export: _export,
        ops.Unload: _unload, ops.Status: _status, ops.Ping: _ping,
    }

    def handle(self, header: dict[str, Any], arrays: list[Any]) -> None:
        """Run one request (on a lane or a pool thread) and write its reply."""
        from .loaders import InputError, ModelLoadError, NotLoaded, OutOfMemory
        from .wire import ErrorKind

        rid = header.get("id")
        out_arrays: list[Any] = []
        try:
            try:
                request = ops.parse_request(header)
            except ValueError as e:
                raise InputError(str(e)) from None
            answer, out_arrays = self._HANDLERS[type(request)](self, request, arrays)
            reply: dict[str, Any] = answer if isinstance(answer, dict) else answer.header()
        except (ModelLoadError, InputError, OutOfMemory, NotLoaded, OverBudget, Outgrown) as e:
            reply = {"error": str(e), "kind": getattr(e.kind, "value", e.kind)}
            out_arrays = []
        except MemoryError:
            reply = {"error": "out of memory in the model worker",
                     "kind": ErrorKind.OUT_OF_MEMORY.value}
            out_arrays = []
        except Exception as e:  # never crash the worker; the traceback goes to stderr
            traceback.print_exc(file=sys.stderr)
            from .loaders import _one_line

            reply = {"error": f"{type(e).__name__}: {_one_line(e)}",
                     "kind": ErrorKind.MODEL.value}
            out_arrays = []
        reply["id"] = rid
        try:
            self.channel.write(reply, out_arrays)
        except (OSError, TypeError, ValueError) as e:
            if isinstance(e, OSError):
                return  # channel gone: the reader loop will see EOF and exit
            traceback.print_exc(file=sys.stderr)
            self.channel.write({"id": rid, "error": f"cannot encode the result: {e}",
                                "kind": ErrorKind.MODEL.value})

    def serve(self) -> None:
        """Read and answer frames until EOF (or a broken channel), then return.

        ``threads + 1`` lanes take turns at reading (leader/follower): the lane that
        read a prediction runs it itself, on the thread the frame woke up, while the
        next lane reads; so an idle worker's prediction costs no hop to another thread.
        At most ``threads`` predictions run at once: past that, a frame waits in a
        backlog the running lanes drain. ``ping`` is answered by the reading lane (a
        health check that stays responsive while every lane is busy), and ``status``
        too; loads and the other slow ops go to the pool, so they never hold a lane.
        """
        for i in range(self.threads + 1):
            threading.Thread(target=self._lane, name=f"tfaas-lane-{i}", daemon=True).start()
        self._ended.wait()
        if self._end_error is not None:
            raise self._end_error

    def _end(self, error: BaseException | None) -> None:
        """The channel is done (EOF: ``None``; else why): :meth:`serve` returns or raises."""
        with self._lanes_lock:
            if not self._ended.is_set():
                self._end_error = error
                self._ended.set()

    def _lane(self) -> None:
        try:
            while True:
                with self._read_lock:
                    if self.poller is not None and not self.channel.buffered:
                        self._poll_for_frame()
                    frame = self.channel.read()
                    if self.poller is not None:
                        self.poller.frame_read()
                    if frame is None:
                        self._end(None)
                        return
                    header, arrays = frame
                    op = header.get("op")
                    if op == ops.Op.PING:  # the heartbeat
                        self.channel.write({**self._pong().header(), "id": header.get("id")})
                        continue
                    if op == ops.Op.STATUS:  # monitoring: never behind other work
                        self.handle(header, arrays)
                        continue
                    if op != ops.Op.PREDICT:
                        self.pool.submit(self.handle, header, arrays)
                        continue
                    with self._lanes_lock:
                        if self._predicting >= self.threads:
                            self._backlog.append(frame)
                            continue
                        self._predicting += 1
                self._predict_on_lane(header, arrays)
        except BaseException as e:
            self._end(e)

    def _poll_for_frame(self) -> None:
        """Before the reading lane sleeps in ``recv``: the poller's wait (the decision
        whether predictions run is taken under the lock they end under)."""
        assert self.poller is not None
        with self._lanes_lock:
            busy = self._predicting > 0
            if busy:
                self.poller.sleep_while_busy()
        self.poller.wait(busy)

    def _predict_on_lane(self, header: dict[str, Any], arrays: list[Any]) -> None:
        """Run a prediction, then those that waited in the backlog meanwhile."""
        while True:
            self.handle(header, arrays)
            with self._lanes_lock:
                if not self._backlog:
                    self._predicting -= 1
                    if not self._predicting and self.poller is not None:
                        self.poller.predictions_ended()
                    return
                header, arrays = self._backlog.popleft()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tfaas-worker")
    ap.add_argument("--fd", type=int, required=True, help="the channel socket's fd")
    ap.add_argument("--threads", type=int, default=0, help="request threads (0: #cores)")
    ap.add_argument("--cache-size", type=int, default=10)
    ap.add_argument("--parent-pid", type=int, default=0)
    ap.add_argument("--memory-limit", type=int, default=0,
                    help="RSS in bytes past which models are evicted (0: no limit)")
    ap.add_argument("--poll-us", type=int, default=0,
                    help="microseconds to poll for the next request before sleeping "
                         "(0: never; see polling.py)")
    args = ap.parse_args(argv)

    _set_pdeathsig()
    if args.parent_pid and os.getppid() != args.parent_pid:
        return 0  # the parent died before prctl took effect
    # Ctrl-C in the server's terminal is for the server; it stops us via the channel.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    try:
        import numpy  # noqa: F401
    except Exception as e:
        _fatal(f"numpy cannot be imported in {sys.executable}: {e}")
    try:
        import tensorflow  # noqa: F401
    except Exception as e:
        _fatal(f"TensorFlow cannot be imported in {sys.executable}: {e}")
    from .devices import configure_gpus, log_problems

    gpu_settings = GpuSettings.from_environment()
    log_problems(configure_gpus(gpu_settings))  # before any op: before any model loads
    from .loaders import configure_tensorflow

    configure_tensorflow(threads)
    freeze_heap()  # TensorFlow's own objects live as long as the worker
    bare_rss = rss_bytes()
    if 0 < args.memory_limit < bare_rss:
        _fatal(f"its memory limit, {args.memory_limit / 2**20:.0f} MiB "
               "(TFaaSApp.worker_memory_limit), is below what the model worker takes "
               f"before loading any model, {bare_rss / 2**20:.0f} MiB: raise the limit "
               "(0: no limit)", code=ops.MEMORY_LIMIT_REFUSED)

    from .wire import BlockingChannel, ProtocolError

    sock = socket.socket(fileno=args.fd)
    poller = None
    if args.poll_us > 0 and hasattr(select, "poll"):
        from .polling import FramePoller

        poller = FramePoller(sock, args.poll_us / 1e6)
    worker = Worker(BlockingChannel(sock), threads, max(1, args.cache_size),
                    max(0, args.memory_limit), poller, bare_rss, gpu_settings)
    code = 0
    try:
        worker.serve()
    except (OSError, EOFError):
        pass  # channel broken: the server is gone
    except ProtocolError:
        traceback.print_exc(file=sys.stderr)
        code = 2
    sys.stderr.flush()
    # Do not wait for in-flight TF work nor run TF's atexit teardown: the server is gone.
    os._exit(code)
