"""A progress bar for the engines that run here (tqdm, as the notebook shows it)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def bar(total: int, *, enabled: bool, unit: str) -> Iterator[Any]:
    """tqdm's bar (its notebook form in Jupyter) when ``enabled`` and tqdm is installed."""
    if not enabled:
        yield _Silent()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        yield _Silent()
        return
    with tqdm(total=total, unit=unit, unit_scale=True, desc="scoring") as shown:
        yield shown
