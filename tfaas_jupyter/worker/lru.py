"""A small bounded LRU mapping (not thread-safe: the worker guards it with its lock)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Iterator, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Keeps at most ``capacity`` items; the least recently used is evicted first."""

    def __init__(self, capacity: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError("LRU capacity must be >= 1")
        self.capacity = capacity
        self._d: OrderedDict[K, V] = OrderedDict()
        self._on_evict = on_evict

    def get(self, key: K) -> V | None:
        """The value (marking it most recently used), or ``None``."""
        try:
            self._d.move_to_end(key)
        except KeyError:
            return None
        return self._d[key]

    def put(self, key: K, value: V) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.capacity:
            k, v = self._d.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(k, v)

    def pop(self, key: K) -> V | None:
        return self._d.pop(key, None)

    def keys(self) -> list[K]:
        """Keys from least to most recently used."""
        return list(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._d))
