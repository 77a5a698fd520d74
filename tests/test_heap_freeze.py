"""The long-lived heap is kept out of Python's full collections (``gc.freeze``): the
server's once its loop runs (``TFaaSApp.freeze_server_heap``), the worker's after
TensorFlow's import and after each load; an eviction still collects an unloaded model's
cycles (it thaws the heap first)."""

from __future__ import annotations

import gc
import weakref
from typing import Any, Iterator

import pytest

from tfaas_jupyter.worker.lru import freeze_heap, release_memory


@pytest.fixture
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen in this process."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
def tfaas_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"freeze_server_heap": request.param}


@pytest.mark.parametrize("tfaas_config", [True, False], indirect=True)
async def test_the_server_freezes_its_heap_once_it_runs(
        thawed: None, tfaas_config: dict[str, Any], jp_fetch: Any) -> None:
    answer = await jp_fetch("tfaas", "status")
    assert answer.code == 200
    frozen = gc.get_freeze_count()
    if tfaas_config["freeze_server_heap"]:
        assert frozen > 10_000, frozen  # the server's modules at least
    else:
        assert frozen == 0, frozen


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_an_eviction_still_collects_cycles_in_the_frozen_heap(thawed: None) -> None:
    held = _Cycle()
    gone = weakref.ref(held)
    freeze_heap()
    del held
    gc.collect()
    assert gone() is not None  # frozen: no full collection reaches it
    release_memory()
    assert gone() is None  # thawed and collected
    assert gc.get_freeze_count() > 0  # what is left is frozen again
