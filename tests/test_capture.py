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
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from helpers import TFaaSCaller, metric_value, scrape, seed_predict

import tfaas_jupyter.server.capture as capture_module
from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.server.capture import Capture
from tfaas_jupyter.server.capture_files import MERGED_FROM, read_capture

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


def at(hh_mm_ss: str) -> float:
    """A time of 2026-12-08 (UTC) as the capture's clock gives it."""
    return datetime.fromisoformat(f"2026-12-08T{hh_mm_ss}+00:00").timestamp()


def clock(monkeypatch: pytest.MonkeyPatch, hh_mm_ss: str) -> None:
    """Set the capture's clock (the captures' times, and when an hour is over)."""
    monkeypatch.setattr(capture_module, "_now", lambda: at(hh_mm_ss))


def rows_of(folder: Path, model: str = "m", **bounds: Any) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(read_capture(folder, model, **bounds)))


def merged_from(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return json.loads(pq.read_metadata(path).metadata[MERGED_FROM])


def test_tensors_of_any_shape_and_dtype_are_read_back_as_sent(tmp_path: Path) -> None:
    """One row and two rows in one take, a scalar, strings, booleans: the values and
    shapes come back exact, whichever way the writer built their columns."""
    mv = SimpleNamespace(name="m", version=1, key="m@1", signature={
        "inputs": [{"name": "x"}, {"name": "s"}], "outputs": [{"name": "y"}]})
    sent = [
        ([np.arange(3, dtype=np.int32).reshape(1, 3), np.array([b"a", b"bc"], object)],
         [np.array(True)]),
        ([np.arange(6, dtype=np.int32).reshape(2, 3) - 9, np.array([b""], object)],
         [np.array(False)]),
        ([np.array([[2**31 - 1, -2**31, 0]], np.int32), np.array([b"\xff"], object)],
         [np.array(True)]),
    ]
    capture = Capture(tmp_path / "cap")
    for i, (inputs, outputs) in enumerate(sent):
        capture.offer(mv, "ada", 0.001 * i, inputs, outputs)
    capture.close()
    frame = rows_of(tmp_path / "cap").sort_values("latency_ms").reset_index(drop=True)
    for (_, row), (inputs, outputs) in zip(frame.iterrows(), sent):
        assert row["input:x"].dtype == np.int32
        np.testing.assert_array_equal(row["input:x"], inputs[0].ravel())
        assert list(row["input:x:shape"]) == list(inputs[0].shape)
        assert list(row["input:s"]) == list(inputs[1])
        assert list(row["output:y"]) == [bool(outputs[0])]
        assert list(row["output:y:shape"]) == []


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


def test_an_hours_files_are_merged_into_one_once_it_is_over(tmp_path: Path,
                                                             monkeypatch) -> None:
    """Each take writes a file; once the hour is over (and MERGE_AFTER_S more), its
    files become one, which names them: a day under load is 24 files, not 86,400."""
    folder = tmp_path / "cap"
    capture = Capture(folder)
    clock(monkeypatch, "09:01:40")
    for i in range(3):
        one(capture, i)
    capture.flush()
    for i in range(3, 5):
        one(capture, i)
    capture.flush()
    parts = sorted((folder / "m").glob("m-20261208-09-*.parquet"))
    assert len(parts) == 2 and capture.counts.merged_hours == 0
    clock(monkeypatch, "10:01:59")  # over, but not MERGE_AFTER_S (120 s) past it
    one(capture, 5)
    capture.flush()  # written; hour 09 is looked at after each take, and not yet over
    assert all(p.exists() for p in parts)
    clock(monkeypatch, "10:02:01")
    capture.close()
    merged = folder / "m" / "m-20261208-09.parquet"
    assert sorted(p.name for p in (folder / "m").iterdir()) == [
        merged.name, *(p.name for p in (folder / "m").glob("m-20261208-10-*.parquet"))]
    assert merged_from(merged) == [p.name for p in parts]
    assert stat.S_IMODE(merged.stat().st_mode) == 0o600
    assert capture.counts.merged_hours == 1 and capture.counts.written == 6
    frame = rows_of(folder).sort_values("latency_ms")
    assert list(frame["latency_ms"]) == pytest.approx([0, 1, 2, 3, 4, 5])
    for (_, row), i in zip(frame.iterrows(), range(6)):
        np.testing.assert_array_equal(row["input:x"], np.arange(6, dtype=np.float32) + i)
        assert row["input:x"].dtype == np.float32


def test_a_merge_cut_short_is_read_once_and_finished_by_the_next_writer(
        tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "cap"
    first = Capture(folder)
    clock(monkeypatch, "09:30:00")
    for i in range(4):
        one(first, i)
        first.flush()
    parts = {p.name: p.read_bytes() for p in (folder / "m").glob("*.parquet")}
    clock(monkeypatch, "10:30:00")
    first.close()  # merges hour 09
    assert len(parts) == 4 and first.counts.merged_hours == 1
    # a merge cut short after its file was in place: two of its files are still there
    for name in sorted(parts)[:2]:
        (folder / "m" / name).write_bytes(parts[name])
    assert sorted(rows_of(folder)["latency_ms"]) == pytest.approx([0, 1, 2, 3])
    # the next server: a take written late into hour 09 joins that hour's file, and
    # the files the cut merge left are removed
    second = Capture(folder)
    clock(monkeypatch, "09:59:59")
    one(second, 4)
    second.flush()
    clock(monkeypatch, "11:00:00")
    second.close()
    assert [p.name for p in (folder / "m").iterdir()] == ["m-20261208-09.parquet"]
    held = merged_from(folder / "m" / "m-20261208-09.parquet")
    assert set(parts) < set(held) and len(held) == 5  # and the late take's
    assert sorted(rows_of(folder)["latency_ms"]) == pytest.approx([0, 1, 2, 3, 4])


def test_versions_with_other_columns_merge_into_a_file_each(tmp_path: Path,
                                                           monkeypatch) -> None:
    """Version 3 takes an int64 "z" and answers a float64 "y", where version 2 took a
    float32 "x" and answered a float32 "y": two merged files, and read back, a column
    "y" per dtype, each value in its own."""
    folder = tmp_path / "cap"
    capture = Capture(folder)
    other = SimpleNamespace(name="m", version=3, key="m@3", signature={
        "inputs": [{"name": "z"}], "outputs": [{"name": "y"}]})
    clock(monkeypatch, "09:00:00")
    one(capture, 0)
    capture.offer(other, "bob", 0.007, [np.array([[7]], np.int64)],
                  [np.array([[7.5]], np.float64)])
    capture.flush()
    clock(monkeypatch, "12:00:00")
    capture.close()
    names = sorted(p.name for p in (folder / "m").iterdir())
    assert names == ["m-20261208-09.2.parquet", "m-20261208-09.parquet"]
    frame = rows_of(folder).sort_values("version").reset_index(drop=True)
    assert list(frame["version"]) == [2, 3]
    np.testing.assert_array_equal(frame.loc[0, "input:x"], np.arange(6, dtype=np.float32))
    assert frame.loc[1, "input:z"].dtype == np.int64 and list(frame.loc[1, "input:z"]) == [7]
    assert "output:y" not in frame and frame.loc[0, "output:y:float64"] is None
    assert frame.loc[0, "output:y:float32"].dtype == np.float32
    np.testing.assert_array_equal(frame.loc[0, "output:y:float32"], [3, 12])
    assert frame.loc[1, "output:y:float64"].dtype == np.float64
    assert list(frame.loc[1, "output:y:float64"]) == [7.5]
    assert list(frame.loc[1, "output:y:shape"]) == [1, 1]


def test_a_time_range_reads_only_its_hours(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "cap"
    capture = Capture(folder)
    for i, when in enumerate(("09:10:00", "10:10:00", "10:50:00", "11:10:00")):
        clock(monkeypatch, when)
        one(capture, i)
        capture.flush()
    capture.close()

    def utc(hh_mm: str) -> datetime:
        return datetime.fromisoformat(f"2026-12-08T{hh_mm}+00:00")

    def latencies(**bounds: Any) -> list[float]:
        return sorted(rows_of(folder, **bounds)["latency_ms"])

    assert latencies() == pytest.approx([0, 1, 2, 3])
    assert latencies(since=utc("10:10")) == pytest.approx([1, 2, 3])  # from since on
    assert latencies(until=utc("10:50")) == pytest.approx([0, 1])  # before until
    assert latencies(since=utc("10:00"), until=utc("11:00")) == pytest.approx([1, 2])
    assert latencies(since=utc("11:10:01")) == []  # read, and none in the range
    assert len(rows_of(folder, since=utc("12:00"))) == 0  # no hour in the range
    # hour 09 is not even opened when the range starts after it
    (hour_09,) = (folder / "m").glob("m-20261208-09*.parquet")
    hour_09.write_bytes(b"not parquet")
    assert latencies(since=utc("10:00")) == pytest.approx([1, 2, 3])
    with pytest.raises(pa.ArrowInvalid):  # the proof: it is read when in the range
        latencies()


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
    now = datetime.now(timezone.utc)
    try:
        frame = await asyncio.to_thread(client.capture, "vk")
        # a time range: a datetime, or ISO 8601 text (UTC when it names no zone)
        later = await asyncio.to_thread(client.capture, "vk", since=now + timedelta(hours=1))
        earlier = await asyncio.to_thread(
            client.capture, "vk", since=(now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            until=now + timedelta(minutes=5))
    finally:
        client.close()
    assert len(later) == 0 and len(earlier) == 3
    for query, named in (({"since": "yesterday"}, "'since' is not an ISO 8601 time"),
                         ({"until": "2026-13-01"}, "'until' is not an ISO 8601 time"),
                         ({"since": "2026-12-08T10:00", "until": "2026-12-08T09:00"},
                          "'since' (2026-12-08T10:00:00+00:00) is not before 'until'")):
        reply = await tfaas.call("GET", "capture/vk", params=query)
        assert reply.code == 400 and named in reply.json()["error"], (query, reply.body)
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
