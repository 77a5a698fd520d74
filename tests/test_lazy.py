"""What the extension costs: no model worker until first use, idle shutdown, the
memory budget, and cold starts that are visible to the client."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tfmodels
from helpers import TFaaSCaller, metric_value, scrape
from servers import ServerProcess, jupyter_server

from tfaas_jupyter.client.magics import format_status
from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.supervisor import ModelTooBig, ModelWorker
from tfaas_jupyter.worker.lru import LRU, OverBudget

pytestmark = pytest.mark.timeout(600)

MiB = 1024 * 1024
NOT_RUNNING = "not running (starts on first use)"


def _installed_tensorflow() -> str:
    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    raise AssertionError("TensorFlow is not installed")


def _tree_rss(pid: int) -> tuple[int, list[psutil.Process]]:
    """(RSS of the process and all its descendants, the descendants)."""
    root = psutil.Process(pid)
    children = root.children(recursive=True)
    total = 0
    for proc in [root, *children]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total, children


def _browse(server: ServerProcess, paths: list[str]) -> dict[str, Any]:
    """GET each path (all must answer 200); the answers by path (JSON decoded)."""
    answers: dict[str, Any] = {}
    for path in paths:
        code, body = server.request("GET", path)
        assert code == 200, (path, code, body[:300])
        answers[path] = json.loads(body) if path.endswith(("status", "models")) else body
    return answers


# --------------------------------------------------------------------------- idle cost


def test_an_unused_server_has_no_worker_and_costs_under_40_mb(tmp_path: Path) -> None:
    """The extension's idle cost: no TensorFlow process and < 40 MB of RSS more than
    the same server without it, after the page, models, status and metrics were read."""
    tfaas_paths = ["tfaas/", "tfaas/models", "tfaas/status", "tfaas/metrics", "api/status"]
    with jupyter_server(tmp_path / "with") as server:
        answers = _browse(server, tfaas_paths)
        time.sleep(1.0)  # let the server settle after the requests
        with_extension, children = _tree_rss(server.pid)
        assert children == [], [c.cmdline() for c in children]
        status = answers["tfaas/status"]
        assert status["worker"]["state"] == "stopped"
        assert status["worker"]["summary"] == NOT_RUNNING
        assert status["worker"]["pid"] is None and status["worker"]["starts"] == 0
        # read from package metadata, TensorFlow was not imported for it
        assert status["tensorflow"] == _installed_tensorflow()
        assert answers["tfaas/models"] == []
        # the page and the notebook's %tfaas status say so too
        assert f"model worker: {NOT_RUNNING}".encode() in answers["tfaas/"]
        assert f"worker: {NOT_RUNNING}, TensorFlow {status['tensorflow']}" in format_status(
            status)
        code, _ = server.request("GET", "tfaas/params")
        assert code == 400  # no model: a clear error, and still no worker
        assert _tree_rss(server.pid)[1] == []
    with jupyter_server(tmp_path / "without", ready_path="api/status",
                        with_tfaas=False) as plain:
        code, _ = plain.request("GET", "tfaas/status")
        assert code == 404  # really without the extension
        _browse(plain, ["api/status"])
        time.sleep(1.0)
        without_extension, _ = _tree_rss(plain.pid)
    extra = with_extension - without_extension
    assert extra < 40 * MiB, (
        f"the extension costs {extra / MiB:.1f} MiB idle "
        f"({with_extension / MiB:.1f} vs {without_extension / MiB:.1f} MiB)"
    )


# --------------------------------------------------------------------------- idle shutdown


def _seed_doc(seed_dir: Path) -> dict[str, Any]:
    return json.loads((seed_dir / "input.json").read_text())


def _cold_start_timing(reply: Any) -> str | None:
    entries = [e for e in reply.headers.get_list("Server-Timing") if e.startswith("cold-start;")]
    assert len(entries) <= 1
    return entries[0] if entries else None


@pytest.mark.parametrize("tfaas_config", [{"worker_idle_timeout": 2}])
async def test_the_worker_stops_when_idle_and_comes_back_for_concurrent_requests(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    status = (await tfaas.call("GET", "status")).json()["worker"]
    assert status["summary"] == NOT_RUNNING and status["starts"] == 0

    upload = await tfaas.upload_dir(seed_dir, "vk")
    assert upload.code == 200, upload.body
    timing = _cold_start_timing(upload)  # the upload started the worker
    assert timing and "worker start" in timing and "model load" in timing
    doc = _seed_doc(seed_dir)
    first = await tfaas.predict(doc)
    assert first.code == 200 and _cold_start_timing(first) is None  # loaded at upload
    status = (await tfaas.call("GET", "status")).json()["worker"]
    pid = status["pid"]
    assert status["state"] == "running" and status["starts"] == 1 and pid
    assert status["idle_timeout"] == 2 and status["idle_seconds"] is not None

    # polling /status does not keep the worker alive: it stops after 2 s without use
    deadline = time.monotonic() + 120
    while status["state"] == "running":
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.5)
        status = (await tfaas.call("GET", "status")).json()["worker"]
    assert status["state"] == "stopped" and status["pid"] is None
    assert "stopped after 2 s idle" in status["summary"]
    assert status["last_error"] is None
    assert status["tensorflow"] == _installed_tensorflow()  # still known
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    # requests arriving while it starts again all wait for it, and get the same answer
    replies = await asyncio.gather(*(tfaas.predict(doc) for _ in range(8)))
    assert [r.code for r in replies] == [200] * 8, [r.body for r in replies]
    assert all(r.json() == first.json() for r in replies)
    timings = [_cold_start_timing(r) for r in replies]
    assert all(t and "worker start" in t for t in timings), timings
    status = (await tfaas.call("GET", "status")).json()["worker"]
    assert status["starts"] == 2 and status["restarts"] == 1
    assert status["pid"] and status["pid"] != pid
    cold = status["last_cold_start"]
    assert cold["model"] == "vk" and cold["seconds"] >= cold["load_seconds"] > 0

    metrics = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(metrics, "tfaas_worker_starts_total") == 2
    assert metric_value(metrics, "tfaas_worker_state", state="running") == 1
    assert metric_value(metrics, "tfaas_worker_last_cold_start_seconds") == cold["seconds"]
    assert metric_value(metrics, "tfaas_worker_idle_timeout_seconds") == 2.0


# --------------------------------------------------------------------------- memory


def test_the_cache_evicts_by_memory_least_recently_used_first() -> None:
    cache: LRU[str, str] = LRU(10, memory_limit=1000)
    cache.put("a", "A", 300)
    cache.put("b", "B", 300)
    cache.get("a")  # b is now the least recently used
    # RSS 1100 with c (300) just loaded: over by 100, b (300) goes
    assert cache.fit("c", 300, rss=1100) == ["b"]
    cache.put("c", "C", 300)
    assert cache.keys() == ["a", "c"] and cache.sizes() == {"a": 300, "c": 300}
    # within the limit: nothing goes
    assert cache.fit("d", 100, rss=900) == []
    # 800 for the worker alone (1100 - 300 - 0): a 300 model can never fit in 1000
    with pytest.raises(OverBudget, match="about 0 MiB"):
        LRU(10, memory_limit=1000).fit("e", 300, rss=1100)
    assert LRU(10).fit("f", 10**12, rss=10**13) == []  # no limit


def _make_big_graphdef(directory: Path, n: int, seed: int) -> tuple[Path, np.ndarray]:
    """A frozen GraphDef ``y = x @ W`` with an n x n float32 constant W."""
    import tensorflow as tf

    directory.mkdir(parents=True, exist_ok=True)
    weights = np.random.default_rng(seed).normal(size=(n, n)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, n], name="x")
        tf.identity(tf.matmul(x, tf.constant(weights)), name="out")
    path = directory / "model.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path, weights


async def test_models_are_evicted_when_the_worker_passes_its_memory_limit(
    tmp_path: Path, built: dict[str, tfmodels.Built]
) -> None:
    n = 3072  # 36 MiB of weights per model
    path, weights = _make_big_graphdef(tmp_path / "big", n, seed=5)
    params = {"inputNode": "x", "outputNode": "out"}
    small = built["graphdef"]

    async def load(w: ModelWorker, key: str) -> None:
        if key == "small":
            await w.load(ModelRef(key=key, path=str(small.path), format=small.fmt,
                                  params=small.params))
        else:
            await w.load(ModelRef(key=key, path=str(path), format="graphdef", params=params))

    probe = ModelWorker(threads=1)
    try:
        await load(probe, "small")
        await load(probe, "big")
        measured = await probe.status()
    finally:
        await probe.stop()
    size = measured["model_sizes"]["big"]
    assert size >= weights.nbytes * 0.9, measured["model_sizes"]  # the estimate sees it
    # room for the small model and one big one and a half, not two
    limit = measured["rss"] + size // 2
    worker = ModelWorker(threads=1, memory_limit=limit)
    try:
        for key in ("small", "b1", "b2", "b3"):
            await load(worker, key)
        status = await worker.status()
        loaded = status["loaded"]
        assert loaded[-1] == "b3" and "b1" not in loaded and len(loaded) <= 2, status
        assert status["memory_limit"] == limit
        assert set(status["model_sizes"]) == set(loaded)
        assert status["rss"] < limit + size, (status["rss"], limit, size)  # memory released
        # an evicted model comes back on its next use, with right answers
        x = np.random.default_rng(1).normal(size=(3, n)).astype(np.float32)
        out = (await worker.predict(
            ModelRef(key="b1", path=str(path), format="graphdef", params=params), [x])).outputs
        np.testing.assert_allclose(out[0], x.astype(np.float64) @ weights, rtol=1e-3,
                                   atol=1e-2)
        loaded = (await worker.status())["loaded"]
        assert loaded[-1] == "b1" and "b2" not in loaded
    finally:
        await worker.stop()

    tight = ModelWorker(threads=1, memory_limit=measured["rss"] - size // 2)
    try:
        with pytest.raises(ModelTooBig) as refused:
            await load(tight, "b1")
        assert refused.value.status == 507 and "MiB" in refused.value.message
        assert (await tight.status())["loaded"] == []
    finally:
        await tight.stop()


@pytest.mark.parametrize("tfaas_config", [{"busy_poll_us": 250}])
async def test_the_busy_poll_setting_reaches_the_worker(tfaas: TFaaSCaller,
                                                      jp_serverapp) -> None:
    status = (await tfaas.call("GET", "status")).json()["worker"]
    assert status["busy_poll_us"] == 250
    # the worker process itself was started polling for 250 us
    worker = jp_serverapp.web_app.settings["tfaas_service"].worker
    pid = (await worker.status(start=True))["pid"]
    argv = psutil.Process(pid).cmdline()
    assert argv[argv.index("--poll-us") + 1] == "250", argv


def test_metrics_show_the_workers_memory_and_lifecycle() -> None:
    from tfaas_jupyter.server.metrics import render
    from tfaas_jupyter.server.stats import Stats

    class Service:
        stats = Stats()

        class repository:
            @staticmethod
            def names() -> list[str]:
                return ["m"]

    worker = {"state": "running", "starts": 3, "idle_seconds": 1.5, "idle_timeout": 900,
              "rss": 700 * MiB, "memory_limit": 4096 * MiB, "model_sizes": {"m@u1": 12345},
              "last_cold_start": {"seconds": 4.25}, "loaded": ["m@u1"]}
    metrics = scrape(render(Service(), worker))
    for name, labels, expected in (
            ("tfaas_worker_state", {"state": "running"}, 1),
            ("tfaas_worker_state", {"state": "stopped"}, 0),
            ("tfaas_worker_starts_total", {}, 3), ("tfaas_worker_idle_seconds", {}, 1.5),
            ("tfaas_worker_idle_timeout_seconds", {}, 900),
            ("tfaas_worker_last_cold_start_seconds", {}, 4.25),
            ("tfaas_worker_resident_memory_bytes", {}, 700 * MiB),
            ("tfaas_worker_memory_limit_bytes", {}, 4096 * MiB),
            ("tfaas_model_memory_bytes", {"model": "m", "key": "m@u1"}, 12345)):
        assert metric_value(metrics, name, **labels) == expected, (name, labels)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("layout, expected", [
    # cgroup v2: the tightest limit of the process's cgroup and its ancestors
    ({"proc/self/cgroup": "0::/user.slice/session-1.scope\n",
      "sys/fs/cgroup/user.slice/memory.max": "4294967296\n",
      "sys/fs/cgroup/user.slice/session-1.scope/memory.max": "max\n"}, 4 << 30),
    # cgroup v1: memory.limit_in_bytes; ~2**63 means no limit
    ({"proc/self/cgroup": "4:memory:/job\n3:cpu:/\n",
      "sys/fs/cgroup/memory/job/memory.limit_in_bytes": "2147483648\n"}, 2 << 30),
    ({"proc/self/cgroup": "4:memory:/job\n",
      "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 16 << 30),
    # no cgroup limit: the machine's memory
    ({"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"}, 16 << 30),
])
def test_the_default_memory_budget_follows_the_cgroup_limit(
    tmp_path: Path, layout: dict[str, str], expected: int
) -> None:
    from tfaas_jupyter.server.sysinfo import memory_limit

    _write(tmp_path / "proc/meminfo", f"MemTotal: {16 << 20} kB\nMemFree: 1 kB\n")
    for name, text in layout.items():
        _write(tmp_path / name, text)
    assert memory_limit(str(tmp_path)) == expected
