"""Long work in a notebook: a score shows its progress, and interrupting the kernel
cancels the score's work on the cluster.

A kernel interrupt is SIGINT, which Python turns into KeyboardInterrupt in the main
thread. Here the score runs in the test's main thread, as a notebook cell does, over
work that lasts minutes (rows generated on the workers, scores written to Parquet); a
thread sends SIGINT to this process once the engine reports the work running. The
checks are made on the engine's side (the Dask scheduler's tasks, Spark's status
tracker), with generous timeouts that are still far shorter than the work, so that a
score that does not cancel fails them. Like a kernel (``sys.last_traceback``), the test
keeps the interrupted call's traceback, and with it the call's frames, alive.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from helpers import TFaaSCaller, in_thread
from test_scoring import (  # noqa: F401 - the fixtures are used by name
    SEED,
    CountingClient,
    check_scores,
    client,
    dask_client,
    events,
    served,
    upload_seed,
)

from tfaas_jupyter.scoring import spark_engine
from tfaas_jupyter.scoring.dask_engine import score_dask
from tfaas_jupyter.scoring.runtime import ScoringError
from tfaas_jupyter.scoring.score import fetch_model
from tfaas_jupyter.scoring.spark_engine import score_spark

pytestmark = pytest.mark.timeout(900)

#: How long the work may take to start, and the cancelled work to leave the engine: far
#: more than either needs on a loaded machine, far less than the work itself.
STARTS_WITHIN = 240.0
LEAVES_WITHIN = 30.0
#: How soon the interrupt must reach the caller.
ANSWERS_WITHIN = 10.0


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


class Interrupter:
    """Sends SIGINT to this process once ``started()`` holds, as a kernel interrupt
    does; the handler raises KeyboardInterrupt only while the call runs (``armed``),
    so that a late signal cannot end the test session."""

    def __init__(self, started: Callable[[], bool]) -> None:
        self.started = started
        self.armed = threading.Event()
        self.sent_at: float | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="interrupter", daemon=True)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.armed.is_set():
            self.armed.clear()
            raise KeyboardInterrupt

    def _run(self) -> None:
        try:
            wait_for(lambda: self.armed.is_set() and self.started(), STARTS_WITHIN,
                     "the work started on the engine")
            self.sent_at = time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def __enter__(self) -> Interrupter:
        self.previous = signal.signal(signal.SIGINT, self._handler)
        self.armed.set()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.armed.clear()
        self.thread.join(STARTS_WITHIN)
        signal.signal(signal.SIGINT, self.previous)

    def answered_within(self) -> float:
        assert self.error is None, self.error
        assert self.sent_at is not None, "no interrupt sent"
        return time.monotonic() - self.sent_at


# -- Dask ------------------------------------------------------------------------------

#: 320 partitions of 250,000 rows (80 M rows, minutes of work on 2 cores)
DASK_ROWS, DASK_CHUNK = 80_000_000, 250_000


def scheduler_tasks(dask_scheduler: Any) -> dict[str, int]:
    """The scheduler's tasks by state (run on the scheduler)."""
    states: dict[str, int] = {}
    for task in dask_scheduler.tasks.values():
        states[task.state] = states.get(task.state, 0) + 1
    return states


def pending(cluster: Any) -> int:
    """Tasks the scheduler still means to run or is running."""
    states = cluster.run_on_scheduler(scheduler_tasks)
    return sum(states.get(s, 0) for s in ("waiting", "queued", "processing", "no-worker"))


def processing(cluster: Any) -> bool:
    return any(cluster.processing().values())


class Screen(io.StringIO):
    """Standard output as the user sees it, readable while the call still runs (pytest's
    capture is read only once, and draining it would hide the rest)."""

    def shows(self, text: str) -> bool:
        return text in self.getvalue()


async def test_interrupt_cancels_the_dask_tasks(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, dask_client: Any,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dask.array as da

    await upload_seed(tfaas, seed_dir)
    shipped = await in_thread(fetch_model, client, "vk")
    rows = da.random.random((DASK_ROWS, 42), chunks=(DASK_CHUNK, 42)).astype(np.float32)
    assert await in_thread(pending, dask_client) == 0

    # the main thread waits for the cluster, as a cell does (this test's event loop too);
    # the interrupt comes once the work runs and Dask's progress bar has been drawn (it
    # draws from its own thread, up to 100 ms after the work starts)
    screen = Screen()
    monkeypatch.setattr(sys, "stdout", screen)
    with Interrupter(lambda: screen.shows("Completed") and processing(dask_client)) \
            as interrupter, \
            pytest.raises(KeyboardInterrupt) as kept:
        score_dask(shipped, rows, "dask-array", cluster=dask_client,
                   output=str(tmp_path / "scores"), batch_rows=None, progress=True)
    assert interrupter.answered_within() < ANSWERS_WITHIN
    assert kept.traceback  # the frames stay alive, as in a kernel
    # the scheduler drops the work at once: nothing queued or running is left of it
    await in_thread(wait_for, lambda: pending(dask_client) == 0, LEAVES_WITHIN,
                    "the interrupted score's tasks left the scheduler")
    written = len(list((tmp_path / "scores").glob("*.parquet")))
    assert written < DASK_ROWS // DASK_CHUNK
    # Dask's progress bar was shown while it ran
    assert screen.shows("% Completed |")

    # the cluster scores the next call, exactly
    x = events(4096, seed=8)
    expected = await served(client, x)
    scores = await in_thread(client.score, "vk", x, engine="dask", cluster=dask_client,
                             progress=False)
    check_scores(scores, expected)


# -- Spark -----------------------------------------------------------------------------

#: 48 partitions of 1,000,000 rows of 42 random columns (minutes of work on 2 cores)
SPARK_ROWS, SPARK_PARTITIONS = 48_000_000, 48


async def test_interrupt_cancels_the_spark_job_group(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, spark: Any,  # noqa: F811
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyspark.sql import functions as F

    await upload_seed(tfaas, seed_dir)
    shipped = await in_thread(fetch_model, client, "vk")
    groups: list[str] = []

    def recorded_group() -> str:
        groups.append(f"{spark_engine.JOB_GROUP}-test-{len(groups)}")
        return groups[-1]

    monkeypatch.setattr(spark_engine, "new_job_group", recorded_group)
    tracker = spark.sparkContext.statusTracker()

    def group_jobs() -> list[Any]:
        return [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(groups[-1])] \
            if groups else []

    def running() -> bool:
        return any(j is not None and j.status == "RUNNING" for j in group_jobs()) and bool(
            tracker.getActiveStageIds())

    frame = spark.range(SPARK_ROWS, numPartitions=SPARK_PARTITIONS).select(
        *[F.rand(seed=i).cast("float").alias(f"x{i}") for i in range(42)])
    with Interrupter(running) as interrupter, pytest.raises(KeyboardInterrupt) as kept:
        score_spark(shipped, frame, "spark", session=spark, output=str(tmp_path / "scores"),
                    batch_rows=None, progress=True)
    assert interrupter.answered_within() < ANSWERS_WITHIN
    assert kept.traceback
    (group,) = groups

    def cancelled() -> bool:
        jobs = group_jobs()
        return bool(jobs) and all(j.status == "FAILED" for j in jobs) and not (
            tracker.getActiveJobsIds() or tracker.getActiveStageIds())

    # the job group's jobs end as cancelled (Spark's FAILED), no stage left running
    await in_thread(wait_for, cancelled, LEAVES_WITHIN, f"the jobs of {group} cancelled")
    written = len(list((tmp_path / "scores").glob("*.parquet")))
    assert written < SPARK_PARTITIONS

    # a failing partition names its index and the reason, as itself
    narrow = frame.limit(2048).repartition(2).select(*[f"x{i}" for i in range(41)])
    with pytest.raises(ScoringError, match=r"partition \d failed on .*\(pid \d+\): model 'vk' "
                                           r"expects 42 values per row, got 41"):
        await in_thread(score_spark, shipped, narrow, "spark", session=spark,
                        output=str(tmp_path / "narrow"), batch_rows=None, progress=False)

    # the session scores the next call, exactly
    monkeypatch.undo()
    x = events(4096, seed=9)
    expected = await served(client, x)
    answer = await in_thread(client.score, "vk", pd.DataFrame(x, columns=SEED.KEYS),
                             engine="spark", cluster=spark, progress=False)
    check_scores(answer[answer.columns[-1]].to_numpy(), expected[:, 0])


async def test_local_and_service_scores_show_progress(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
) -> None:
    """tqdm's bar (its text form outside a notebook) counts every row, named 'scoring'."""
    await upload_seed(tfaas, seed_dir)
    x = events(8192, seed=10)
    expected = await served(client, x)
    capfd.readouterr()
    for engine in ("local", "service"):
        scores = await in_thread(client.score, "vk", x, engine=engine, batch_rows=1024)
        check_scores(scores, expected)
        shown = capfd.readouterr().err
        assert "scoring: 100%" in shown and "8.19k/8.19k" in shown, (engine, shown)
    quiet = await in_thread(client.score, "vk", x, progress=False)
    check_scores(quiet, expected)
    assert "scoring" not in capfd.readouterr().err

