"""A record of what was scored: with TFaaSApp.capture_dir, captured predictions go to
Parquet files per model and hour, written by a background thread from a bounded
queue (what does not fit is dropped and counted), and read back over HTTP as a
DataFrame (TFaaSClient.capture, %tfaas capture)."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import TFaaSCaller, metric_value, scrape, seed_predict

from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.server.capture import Capture, read_capture

pytestmark = pytest.mark.timeout(600)


#: A model version as the capture sees one: its name, version, key and signature.
MV = SimpleNamespace(name="m", version=2, key="m@2", signature={
    "inputs": [{"name": "x"}], "outputs": [{"name": "y"}]})


def one(capture: Capture, i: int, caller: str = "ada") -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + i
    capture.offer(MV, caller, 0.001 * i, [x], [x.sum(axis=1, keepdims=True)])


def test_captures_are_written_in_the_models_own_dtypes_and_read_back(tmp_path: Path) -> None:
    capture = Capture(tmp_path / "cap")
    for i in range(5):
        one(capture, i)
    capture.close()
    files = list((tmp_path / "cap" / "m").glob("m-*.parquet"))
    assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE((tmp_path / "cap").stat().st_mode) == 0o700
    frame = pd.read_parquet(io.BytesIO(read_capture(tmp_path / "cap", "m")))
    assert len(frame) == 5 and capture.counts.written == 5
    assert list(frame["caller"]) == ["ada"] * 5 and set(frame["version"]) == {2}
    for i, row in frame.iterrows():
        x = np.arange(6, dtype=np.float32) + i
        assert row["input:x"].dtype == np.float32
        np.testing.assert_array_equal(row["input:x"], x)
        assert list(row["input:x:shape"]) == [2, 3]
        np.testing.assert_array_equal(row["output:y"], x.reshape(2, 3).sum(axis=1))
        assert row["latency_ms"] == pytest.approx(i)
    assert str(frame["time"].dtype).startswith("datetime64")


def test_rate_zero_captures_nothing_and_a_full_queue_drops_and_counts(tmp_path: Path,
                                                                      monkeypatch) -> None:
    none = Capture(tmp_path / "none", rate=0.0)
    for i in range(50):
        one(none, i)
    assert none.counts.captured == 0 and not (tmp_path / "none").exists()
    stuck = Capture(tmp_path / "stuck", queue_size=2)
    monkeypatch.setattr(stuck, "_start", lambda: None)  # no writer: the queue fills
    for i in range(5):
        one(stuck, i)
    assert (stuck.counts.captured, stuck.counts.dropped_queue_full) == (2, 3)
    half = Capture(tmp_path / "half", rate=0.5)
    for i in range(400):
        one(half, i)
    half.close()
    assert 120 < half.counts.written < 280


def test_captures_across_an_hour_go_to_a_file_per_hour(tmp_path: Path, monkeypatch) -> None:
    capture = Capture(tmp_path / "cap")
    monkeypatch.setattr(capture, "_start", lambda: None)  # no writer until all are offered
    for i in range(4):
        one(capture, i)
    (pending,) = capture._pending.values()
    pending.at[:2] = [t - 3600 for t in pending.at[:2]]  # the first two an hour earlier
    monkeypatch.undo()
    capture._start()
    capture.close()
    files = sorted((tmp_path / "cap" / "m").glob("m-*.parquet"))
    hours = {f.name.split("-")[2] for f in files}
    assert len(files) == 2 and len(hours) == 2, files
    frame = pd.read_parquet(io.BytesIO(read_capture(tmp_path / "cap", "m")))
    assert sorted(frame["latency_ms"]) == pytest.approx([0, 1, 2, 3])


def test_an_offer_leaves_no_object_for_the_garbage_collector(tmp_path: Path,
                                                              monkeypatch) -> None:
    """Captures held until the writer takes them must not be tracked by the collector:
    each would lengthen and multiply its collections, which stall every request."""
    capture = Capture(tmp_path / "cap")
    monkeypatch.setattr(capture, "_start", lambda: None)
    x, y = np.ones((1, 42), np.float32), np.ones((1, 1), np.float32)
    capture.offer(MV, "ada", 0.001, [x], [y])  # the version's pending columns
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(1000):
        capture.offer(MV, "ada", 0.001, [x], [y])
    gc.collect()
    assert capture.counts.captured == 1001
    assert len(gc.get_objects()) - before < 50


def test_a_folder_that_cannot_be_written_counts_errors_and_keeps_capturing(
        tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    capture = Capture(tmp_path / "file" / "cap")
    for i in range(3):
        one(capture, i)
    capture.flush(timeout=5)
    assert capture.status()["queued"] == 0 and capture._unwritten == 0
    assert (capture.counts.errors, capture.counts.written) == (3, 0)
    one(capture, 3)  # still taken, and failing alike
    capture.close()
    assert capture.counts.errors == 4 and capture.counts.captured == 4


def test_a_model_past_its_cap_is_dropped_and_counted(tmp_path: Path) -> None:
    capped = Capture(tmp_path / "capped", max_bytes=1)
    one(capped, 0)
    capped.flush()
    one(capped, 1)
    capped.close()
    assert capped.counts.written == 1 and capped.counts.dropped_over_cap == 1


@pytest.fixture
def tfaas_config(tmp_path: Path) -> dict[str, Any]:
    return {"capture_dir": str(tmp_path / "capture")}


async def test_predictions_are_captured_with_their_caller_and_read_back(
        tfaas: TFaaSCaller, seed_dir: Path, tmp_path: Path, jp_http_port: int,
        jp_base_url: str, jp_serverapp) -> None:
    await tfaas.uploaded(directory=seed_dir, name="vk")
    rows = [[0.1 * i - 0.01 * j for j in range(42)] for i in range(3)]
    answers = []
    for r in rows:
        reply = await tfaas.predict({"model": "vk", "values": r})
        assert reply.code == 200, reply.body
        answers.append(reply.json())
    client = TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}tfaas/",
                         token=jp_serverapp.identity_provider.token, timeout=120)
    try:
        frame = await asyncio.to_thread(client.capture, "vk")
    finally:
        client.close()
    assert len(frame) == 3
    assert set(frame["model"]) == {"vk"} and set(frame["version"]) == {1}
    assert frame["caller"].str.len().min() > 0
    inputs = [c for c in frame.columns if c.startswith("input:") and not c.endswith(":shape")]
    outputs = [c for c in frame.columns if c.startswith("output:") and
               not c.endswith(":shape")]
    assert len(inputs) == 1 and len(outputs) == 1
    for (_, row), r, answer in zip(frame.sort_values("time").iterrows(), rows, answers):
        np.testing.assert_array_equal(row[inputs[0]], np.asarray(r, dtype=np.float32))
        assert row[outputs[0]].dtype == np.float32
        # exactly what the caller was answered, and what the model computes
        np.testing.assert_array_equal(row[outputs[0]], np.ravel(answer).astype(np.float32))
        np.testing.assert_allclose(row[outputs[0]], np.ravel(seed_predict(r)), rtol=1e-5)
        assert row["latency_ms"] > 0
    status = (await tfaas.call("GET", "status")).json()["capture"]
    assert (status["written"], status["dropped_queue_full"]) == (3, 0)
    samples = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(samples, "tfaas_capture_written_total") == 3
    assert metric_value(samples, "tfaas_capture_dropped_total", reason="queue_full") == 0
    assert (await tfaas.call("GET", "capture/nosuch")).code == 200  # an empty table
    assert json.dumps(status)
