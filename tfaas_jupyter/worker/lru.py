"""The worker's model cache: least recently used out, bounded by a count and by memory.

Not thread-safe: the worker guards it with its lock. Memory is the worker's resident
set size (RSS); a model's size is estimated as the RSS growth its load caused.
"""

from __future__ import annotations

import gc
import os
from collections import OrderedDict
from typing import Callable, Generic, Iterator, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MiB = 1024 * 1024


def rss_bytes() -> int:
    """This process's resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def freeze_heap() -> None:
    """Take the objects alive now out of the cycle collector's full collections.

    TensorFlow and the loaded models are some 350,000 objects that live as long as
    the worker (or the model); every full collection, which a steady stream of
    requests triggers a few times a minute, walked them all with the GIL held for
    150-250 ms: a stall of every request meanwhile. Frozen (``gc.freeze``), they are
    still freed by reference counting; a cycle among them waits for the next
    :func:`release_memory`, which thaws them first."""
    gc.freeze()


def release_memory(*, collect: bool = True) -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc), so that
    RSS drops after an eviction. Best effort.

    ``collect=False`` skips the cycle collection: with TensorFlow's objects alive it
    holds the GIL for 150-200 ms, a stall of every request the worker serves meanwhile,
    which a load must not cause (only an eviction, rare and already slow, pays it).
    A collection thaws the frozen heap first (an unloaded model's cycles are in it)
    and freezes what is left."""
    if collect:
        gc.unfreeze()
        gc.collect()
        freeze_heap()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class OverBudget(Exception):
    """A model that does not fit in the memory limit even in a new worker, alone."""

    kind = "memory"


class Outgrown(Exception):
    """A model that would fit in a new worker, but not in this one: the worker itself
    (its RSS less its models' sizes) has grown so that, with every other model
    evicted, it is still over its limit. The supervisor restarts it and loads again."""

    kind = "restart"


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


class LRU(Generic[K, V]):
    """Keeps at most ``capacity`` items; the least recently used is evicted first.

    With ``memory_limit`` (bytes, 0: none), :meth:`fit` also evicts while the process's
    RSS is over the limit, and refuses a model that cannot fit alone.
    """

    def __init__(self, capacity: int, on_evict: Callable[[K, V], None] | None = None,
                 memory_limit: int = 0) -> None:
        if capacity < 1:
            raise ValueError("LRU capacity must be >= 1")
        self.capacity = capacity
        self.memory_limit = memory_limit
        self._d: OrderedDict[K, V] = OrderedDict()
        self._sizes: dict[K, int] = {}
        self._on_evict = on_evict

    def get(self, key: K) -> V | None:
        """The value (marking it most recently used), or ``None``."""
        try:
            self._d.move_to_end(key)
        except KeyError:
            return None
        return self._d[key]

    def put(self, key: K, value: V, size: int = 0) -> list[K]:
        """Add ``key`` (``size``: its estimated bytes); returns the keys evicted by count."""
        self._d[key] = value
        self._d.move_to_end(key)
        self._sizes[key] = max(0, size)
        evicted = []
        while len(self._d) > self.capacity:
            evicted.append(self._evict_oldest())
        return evicted

    def _evict_oldest(self) -> K:
        k, v = self._d.popitem(last=False)
        self._sizes.pop(k, None)
        if self._on_evict is not None:
            self._on_evict(k, v)
        return k

    def fit(self, key: K, size: int, rss: int, bare: int = 0) -> list[K]:
        """Make room for ``key`` (``size`` bytes, just loaded; ``rss`` measured now;
        ``bare``: the worker's RSS when it started, before any model).

        Raises :class:`OverBudget` when a new worker holding only ``key`` would be over
        the limit. Otherwise evicts the least recently used others while the RSS, less
        what the evicted models held, is over the limit, and returns their keys; raises
        :class:`Outgrown` (every other model evicted) when that is not enough: the
        worker itself has grown past what its models explain.
        """
        if not self.memory_limit:
            return []
        others = sum(s for k, s in self._sizes.items() if k != key)
        base = max(rss - others - size, 0)  # the worker itself, with no model loaded
        fresh = bare or base  # what a new worker takes before its first model
        if fresh + size > self.memory_limit:
            raise OverBudget(
                f"the model takes about {_mib(size)} in the model worker, which has "
                f"{_mib(self.memory_limit - fresh)} free for models: its memory limit is "
                f"{_mib(self.memory_limit)} (TFaaSApp.worker_memory_limit) and it takes "
                f"{_mib(fresh)} itself"
            )
        evicted: list[K] = []
        freed = 0
        while rss - freed > self.memory_limit and any(k != key for k in self._d):
            oldest = next(k for k in self._d if k != key)
            freed += self._sizes.get(oldest, 0)
            self.pop(oldest)
            evicted.append(oldest)
        if rss - freed > self.memory_limit:
            raise Outgrown(
                f"the model worker takes {_mib(base)} itself, {_mib(base - fresh)} more "
                f"than when it started: with the model ({_mib(size)}) it is over its "
                f"memory limit of {_mib(self.memory_limit)}; it is restarted"
            )
        return evicted

    def pop(self, key: K) -> V | None:
        self._sizes.pop(key, None)
        return self._d.pop(key, None)

    def keys(self) -> list[K]:
        """Keys from least to most recently used."""
        return list(self._d)

    def sizes(self) -> dict[K, int]:
        """Estimated bytes of each model, least recently used first."""
        return {k: self._sizes.get(k, 0) for k in self._d}

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._d))
