"""The model worker and its supervisor, with real processes and real TensorFlow."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))
import tfmodels
from helpers import load_example

from tfaas_jupyter.server import launch, workerproc
from tfaas_jupyter.server.errors import ErrorKind
from tfaas_jupyter.server.launch import kernelspec_worker
from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.supervisor import (
    ModelError,
    ModelWorker,
    WorkerCrashed,
    WorkerTimeout,
    WorkerUnavailable,
)
from tfaas_jupyter.worker import wire

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.asyncio(loop_scope="module")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models(built: dict[str, tfmodels.Built]) -> dict[str, tfmodels.Built]:
    return built


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker():
    w = ModelWorker(threads=2, request_timeout=60)
    await w.start()
    yield w
    await w.stop()


def load(w: ModelWorker, key: str, path: str, fmt: str, params: dict) -> Any:
    return w.load(ModelRef(key=key, path=path, format=fmt, params=params))


async def predict(w: ModelWorker, key: str, path: str, fmt: str, params: dict,
                  inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs of the worker's answer."""
    answer = await w.predict(ModelRef(key=key, path=path, format=fmt, params=params), inputs)
    return answer.outputs


def _inputs(meta: dict[str, Any], rows: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(rows, *inp["shape"][1:])).astype(np.float32)
            for inp in meta["inputs"]]


def _alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


async def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- wire


async def frame_channel(sock: socket.socket, on_closed: Any = None
                        ) -> tuple[workerproc.FrameChannel, asyncio.Queue[Any]]:
    """The supervisor's side of a channel on ``sock``, and the queue its frames go to."""
    frames: asyncio.Queue[Any] = asyncio.Queue()
    _, channel = await asyncio.get_running_loop().create_connection(
        lambda: workerproc.FrameChannel(lambda h, a: frames.put_nowait((h, a)),
                                  on_closed or (lambda error: None)),
        sock=sock)
    return channel, frames


async def test_wire_roundtrip_async_and_blocking() -> None:
    arrays = [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(20, dtype=np.int64).reshape(4, 5)[:, ::2],  # non-contiguous
        np.zeros((0, 7), dtype=np.float64),
        np.array(3.5, dtype=np.float16),
        np.array([True, False]),
        np.arange(6, dtype=">i4"),
    ]
    a, b = socket.socketpair()
    writer, frames = await frame_channel(a)
    chan = wire.BlockingChannel(b)
    await workerproc.write_frame_async(writer, {"id": 1, "op": "x"}, arrays)
    got = await asyncio.to_thread(chan.read)
    assert got is not None
    header, out = got
    assert header["id"] == 1 and header["op"] == "x"
    for x, y in zip(arrays, out):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    await asyncio.to_thread(chan.write, {"id": 2}, out)
    header, back = await asyncio.wait_for(frames.get(), 60)
    assert header == {"id": 2}
    for x, y in zip(arrays, back):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(TypeError):
        wire.describe([np.array([object()])])
    writer.close()
    assert await asyncio.to_thread(chan.read) is None  # clean EOF
    b.close()


async def test_wire_headers_and_big_arrays_both_ways() -> None:
    """The binary header's members (id, op, key, model_s) and JSON ones cross as they
    were; an array bigger than a joined frame and than the reader's buffer arrives
    whole, several frames in a row stay in step, and garbage is a ProtocolError."""
    a, b = socket.socketpair()
    writer, frames = await frame_channel(a)
    chan = wire.BlockingChannel(b)
    big = np.arange(3 * 100_000, dtype=np.float64).reshape(3, 100_000)  # 2.4 MB
    small = np.arange(5, dtype=np.int32)
    sent = [
        ({"id": 7, "op": "predict", "key": "m@é1"}, [small]),
        ({"id": 8, "op": "load", "key": "m@1", "path": "/x", "params": {"a": [1, None]}},
         []),
        ({"id": 9, "op": "predict", "key": "m@1"}, [big, small]),
        ({"id": 2**63, "model_s": 0.25, "error": "bad", "kind": "input"}, []),
        ({"id": -1, "op": 3, "key": None, "model_s": 1}, [np.zeros((2, 0), np.int8)]),
    ]

    async def send_all() -> None:
        for header, arrays in sent:
            await workerproc.write_frame_async(writer, header, arrays)

    sending = asyncio.ensure_future(send_all())
    for header, arrays in sent:
        got = await asyncio.to_thread(chan.read)
        assert got is not None
        assert got[0] == header
        assert len(got[1]) == len(arrays)
        for x, y in zip(arrays, got[1]):
            assert x.dtype == y.dtype and x.shape == y.shape and y.flags.writeable
            np.testing.assert_array_equal(x, y)
    await sending
    # written while read: the frame is bigger than what the sockets and the reader hold
    writing = asyncio.ensure_future(asyncio.to_thread(chan.write, {"id": 3, "model_s": 0.5},
                                                      [big]))
    header, back = await asyncio.wait_for(frames.get(), 60)
    await writing
    assert header == {"id": 3, "model_s": 0.5}
    np.testing.assert_array_equal(back[0], big)
    with pytest.raises(wire.ProtocolError):
        wire.parse_header(b"\x00" * 10)
    good = wire.encode_header({"id": 1, "op": "x"}, [small])[4:]
    with pytest.raises(wire.ProtocolError):
        wire.parse_header(good + b"\x00")
    with pytest.raises(wire.ProtocolError):
        wire.parse_header(good[:-3])
    writer.close()
    b.close()


async def test_frame_channel_hands_over_each_frame_as_it_arrives() -> None:
    """The supervisor's side of the channel: frames of every size, several in one
    read or one frame over many reads, arrive whole and read-only; a clean EOF and
    garbage end the channel (the latter as a ProtocolError)."""
    closed: list[BaseException | None] = []
    a, b = socket.socketpair()
    channel, frames = await frame_channel(a, closed.append)
    chan = wire.BlockingChannel(b)
    big = np.arange(3 * 100_000, dtype=np.float64).reshape(3, 100_000)  # 2.4 MB
    sent = [({"id": i, "model_s": i / 8}, [np.full((i, 3), i, np.int16)]) for i in range(5)]
    sent += [({"id": 9}, [big, np.arange(70_000, dtype=np.uint8)]), ({"id": 10}, [])]

    def send_all() -> None:
        for header, arrays in sent:
            chan.write(header, arrays)

    writing = asyncio.ensure_future(asyncio.to_thread(send_all))
    for header, arrays in sent:
        got_header, got = await asyncio.wait_for(frames.get(), 60)
        assert got_header == header and len(got) == len(arrays)
        for x, y in zip(arrays, got):
            assert x.dtype == y.dtype and not y.flags.writeable
            np.testing.assert_array_equal(x, y)
    await writing
    reading = asyncio.ensure_future(asyncio.to_thread(chan.read))  # read while written
    await workerproc.write_frame_async(channel, {"id": 11, "op": "ping"}, [big])
    back = await reading
    assert back is not None and back[0] == {"id": 11, "op": "ping"}
    np.testing.assert_array_equal(back[1][0], big)
    b.close()
    for _ in range(100):
        if closed:
            break
        await asyncio.sleep(0.05)
    assert closed == [None]
    with pytest.raises(ConnectionResetError):
        await channel.drain()

    a, b = socket.socketpair()
    await frame_channel(a, closed.append)
    b.sendall(b"\x00\x00\x00\x05garbage")
    for _ in range(100):
        if len(closed) == 2:
            break
        await asyncio.sleep(0.05)
    assert isinstance(closed[1], wire.ProtocolError)
    b.close()


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("name", ["graphdef", "keras_export", "module", "keras_file"])
async def test_format_predicts_like_tensorflow(worker: ModelWorker, models, name: str) -> None:
    b = models[name]
    meta = await load(worker, f"{name}/1", str(b.path), b.fmt, b.params)
    for rows in (1, 57):
        xs = _inputs(meta, rows, seed=rows)
        out = await predict(worker, f"{name}/1", str(b.path), b.fmt, b.params, xs)
        ref = b.reference(xs)
        assert len(out) == len(ref) == len(meta["outputs"])
        for o, r in zip(out, ref):
            assert o.shape[0] == rows
            np.testing.assert_allclose(o, r, rtol=1e-5)


async def test_predict_without_load_and_a_wrong_dtype_refused(worker: ModelWorker,
                                                              models) -> None:
    """The worker runs a model it never loaded, on inputs of the model's dtype; an input
    of another dtype is refused (the server casts, exactly, where it shapes a request:
    the worker never casts a second time)."""
    b = models["graphdef"]
    x64 = np.random.default_rng(5).normal(size=(3, tfmodels.N_IN))  # float64
    with pytest.raises(ModelError) as ei:
        await predict(worker, "gd-direct/1", str(b.path), b.fmt, b.params, [x64])
    assert ei.value.kind is ErrorKind.BAD_INPUT and ei.value.status == 400
    assert "float32" in ei.value.message and "float64" in ei.value.message
    xs = [x64.astype(np.float32)]
    out = await predict(worker, "gd-direct/1", str(b.path), b.fmt, b.params, xs)
    np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
    assert out[0].dtype == np.float32


async def test_metadata(worker: ModelWorker, models) -> None:
    b = models["graphdef"]
    meta = await load(worker, "meta-gd/1", str(b.path), b.fmt, b.params)
    assert meta == {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, tfmodels.N_IN]}],
        "outputs": [{"name": "out", "dtype": "float32", "shape": [None, 1]}],
    }
    b = models["module"]
    meta = await load(worker, "meta-sm/1", str(b.path), b.fmt, {})
    assert [i["name"] for i in meta["inputs"]] == ["a_bias", "b_feat"]  # sorted by name
    assert [o["name"] for o in meta["outputs"]] == ["prob", "z_score"]
    assert meta["inputs"][1]["shape"] == [None, tfmodels.N_IN]
    b = models["keras_file"]
    meta = await load(worker, "meta-k/1", str(b.path), b.fmt, {})
    assert meta["inputs"][0]["shape"] == [None, tfmodels.N_IN]
    assert meta["outputs"][0]["shape"] == [None, 3]


async def test_graphdef_param_spellings(worker: ModelWorker, models) -> None:
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 2)
    for i, params in enumerate([
        {"input_node": "x:0", "output_node": "out:0"},
        {"inputNode": "x:0", "outputNode": "out"},
        {},  # guessed: the only Placeholder and the only sink
    ]):
        out = await predict(worker, f"spell{i}/1", str(b.path), "graphdef", params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)


@pytest.mark.parametrize("archive", ["tar_top", "tar_flat", "zip_top", "zip_flat"])
async def test_exported_savedmodel_archives(worker: ModelWorker, models, tmp_path: Path,
                                            archive: str) -> None:
    b = models["keras_export"]
    src = b.extra[archive]
    if src.name.endswith(".tar.gz"):
        with tarfile.open(src) as t:
            t.extractall(tmp_path)
    else:
        with zipfile.ZipFile(src) as z:
            z.extractall(tmp_path)
    root = next(p.parent for p in tmp_path.rglob("saved_model.pb"))
    assert (root == tmp_path) == archive.endswith("flat")
    meta = await load(worker, f"arch-{archive}/1", str(root), "savedmodel", {})
    xs = _inputs(meta, 4)
    out = await predict(worker, f"arch-{archive}/1", str(root), "savedmodel", {}, xs)
    np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)


async def test_seed_model(worker: ModelWorker, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "examples"))
    try:
        import make_seed_model
    finally:
        sys.path.remove(str(REPO / "examples"))
    target = make_seed_model.build(tmp_path / "seed")
    params = json.loads((target / "params.json").read_text())
    assert params == {"name": "vk", "model": "model.pb", "description": "vk test model",
                      "labels": "labels.txt", "inputNode": "dense_1_input",
                      "outputNode": "output_node0"}
    upload = json.loads((target / "upload.json").read_text())
    assert upload["model"] == str(target / "model.pb") and upload["name"] == "vk"
    inp = json.loads((target / "input.json").read_text())
    assert len(inp["keys"]) == len(inp["values"]) == 42 and inp["model"] == "vk"
    mtime = (target / "model.pb").stat().st_mtime_ns
    assert make_seed_model.build(target) == target  # no rebuild
    assert (target / "model.pb").stat().st_mtime_ns == mtime

    meta = await load(worker, "vk/1", str(target / "model.pb"), "graphdef", params)
    assert meta["inputs"] == [{"name": "dense_1_input", "dtype": "float32", "shape": [None, 42]}]
    out = await predict(worker, "vk/1", str(target / "model.pb"), "graphdef", params,
                               [np.array([inp["values"]], dtype=np.float32)])
    p = float(out[0][0, 0])
    assert 0.05 < p < 0.95


# ----------------------------------------------------------------------------- cache


async def test_unload_and_status(worker: ModelWorker, models) -> None:
    b = models["graphdef"]
    await load(worker, "un/a/1", str(b.path), b.fmt, b.params)
    await load(worker, "un/a/2", str(b.path), b.fmt, b.params)
    await load(worker, "un/b/1", str(b.path), b.fmt, b.params)
    st = await worker.status()
    assert {"un/a/1", "un/a/2", "un/b/1"} <= set(st["loaded"])
    assert st["loaded"][-1] == "un/b/1"  # most recent last
    assert st["tensorflow"] and st["state"] == "running" and st["pid"] == worker.pid
    assert st["python"] == worker.python and "." in st["python_version"]
    await worker.unload("un/a/")
    st = await worker.status()
    assert "un/a/1" not in st["loaded"] and "un/a/2" not in st["loaded"]
    assert "un/b/1" in st["loaded"]


async def test_lru_eviction(models) -> None:
    b = models["graphdef"]
    w = ModelWorker(threads=1, cache_size=2)
    try:
        for k in ("m1", "m2", "m3"):
            await load(w, k, str(b.path), b.fmt, b.params)
        assert (await w.status())["loaded"] == ["m2", "m3"]
        await load(w, "m2", str(b.path), b.fmt, b.params)  # touch: m3 is now oldest
        await load(w, "m4", str(b.path), b.fmt, b.params)
        st = await w.status()
        assert st["loaded"] == ["m2", "m4"] and st["cache_size"] == 2
    finally:
        await w.stop()


# ----------------------------------------------------------------------------- errors


async def test_bad_model_file(worker: ModelWorker, models, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00this is not a graph\xff" * 10)
    with pytest.raises(ModelError) as ei:
        await load(worker, "bad/1", str(bad), "graphdef", {"inputNode": "x", "outputNode": "y"})
    assert ei.value.kind is ErrorKind.LOAD and ei.value.status == 409
    assert "GraphDef" in ei.value.message
    assert "Traceback" not in ei.value.message and "\n" not in ei.value.message
    for fmt, path in (("savedmodel", tmp_path), ("keras", bad), ("onnx", bad)):
        with pytest.raises(ModelError) as ei:
            await load(worker, f"bad-{fmt}/1", str(path), fmt, {})
        assert "\n" not in ei.value.message and ei.value.kind is ErrorKind.LOAD
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 2)
    out = await predict(worker, "gd-after-bad/1", str(b.path), b.fmt, b.params, xs)
    np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)


async def test_wrong_input_shape(worker: ModelWorker, models) -> None:
    pid = worker.pid
    for name in ("graphdef", "keras_export", "keras_file"):
        b = models[name]
        with pytest.raises(ModelError) as ei:
            await predict(worker, f"shape-{name}/1", str(b.path), b.fmt, b.params,
                                 [np.zeros((3, tfmodels.N_IN + 1), np.float32)])
        assert ei.value.kind == "input" and "shape" in ei.value.message
    b = models["module"]
    with pytest.raises(ModelError) as ei:
        await predict(worker, "shape-sm/1", str(b.path), b.fmt, {}, [np.zeros((2, 6))])
    assert "2 input" in ei.value.message
    with pytest.raises(ModelError) as ei:  # refused before anything is sent
        await predict(worker, "shape-obj/1", str(b.path), b.fmt, {},
                             [np.array([[object()]]), np.zeros((1, 6))])
    assert ei.value.kind == "input"
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 2)
    out = await predict(worker, "graphdef/1", str(b.path), b.fmt, b.params, xs)
    np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
    assert worker.pid == pid


async def test_missing_node_names(worker: ModelWorker, models, tmp_path: Path) -> None:
    b = models["graphdef"]
    with pytest.raises(ModelError) as ei:
        await load(worker, "mn/1", str(b.path), "graphdef",
                          {"inputNode": "dense_1_input", "outputNode": "out"})
    msg = ei.value.message
    assert "'dense_1_input'" in msg and "not found" in msg and "x" in msg.split(":")[-1]
    with pytest.raises(ModelError) as ei:
        await load(worker, "mn/2", str(b.path), "graphdef",
                          {"inputNode": "x", "outputNode": "nope:0"})
    assert "'nope'" in ei.value.message

    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None, 2], name="a")
        c = tf.compat.v1.placeholder(tf.float32, [None, 2], name="c")
        tf.add(a, c, name="sum")
    pb = tmp_path / "two.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    with pytest.raises(ModelError) as ei:
        await load(worker, "mn/3", str(pb), "graphdef", {})
    assert "inputNode" in ei.value.message and "a, c" in ei.value.message
    out = await predict(worker, "mn/4", str(pb), "graphdef", {"inputNode": "a,c"},
                               [np.ones((2, 2), np.float32), np.full((2, 2), 2, np.float32)])
    np.testing.assert_array_equal(out[0], np.full((2, 2), 3, np.float32))


# ----------------------------------------------------------------------------- crashes


async def test_sigkill_mid_request_then_recovers(models) -> None:
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 3)
    w = ModelWorker(threads=1)
    try:
        await load(w, "k/1", str(b.path), b.fmt, b.params)
        pid = w.pid
        assert pid
        os.kill(pid, signal.SIGSTOP)  # keep the request in flight
        task = asyncio.ensure_future(predict(w, "k/1", str(b.path), b.fmt, b.params, xs))
        await asyncio.sleep(0.3)
        assert not task.done()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed) as ei:
            await task
        assert ei.value.status == 503
        # killed by a person, not by the kernel's out-of-memory killer: no such claim
        assert "SIGKILL (signal 9)" in ei.value.message, ei.value.message
        assert "memory" not in ei.value.message
        assert w.last_error and "SIGKILL" in w.last_error
        out = await predict(w, "k/1", str(b.path), b.fmt, b.params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        assert w.pid != pid and w.restarts == 1 and w.state == "running"
        assert not _alive(pid)
    finally:
        await w.stop()


async def test_hang_times_out_then_recovers(models) -> None:
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 3)
    w = ModelWorker(threads=1, request_timeout=1.5)
    try:
        await load(w, "t/1", str(b.path), b.fmt, b.params)
        pid = w.pid
        assert pid
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        first = asyncio.ensure_future(predict(w, "t/1", str(b.path), b.fmt, b.params, xs))
        await asyncio.sleep(0.5)
        # in flight when the first one times out: fails as a crash, not a timeout
        with pytest.raises(WorkerCrashed) as ei2:
            await predict(w, "t/1", str(b.path), b.fmt, b.params, xs)
        assert "timed out" in ei2.value.message
        with pytest.raises(WorkerTimeout) as ei:
            await first
        assert ei.value.status == 504 and time.monotonic() - t0 < 15  # 10x the timeout
        assert w.last_error and "did not answer" in w.last_error
        assert await _wait_gone(pid, 10)
        out = await predict(w, "t/1", str(b.path), b.fmt, b.params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        assert w.pid != pid and w.restarts == 1
    finally:
        await w.stop()


async def test_a_models_first_call_gets_the_load_budget(tmp_path: Path) -> None:
    """Loading is not held to the request timeout: a model's first call (and an
    explicit load) may take ``load_timeout`` more."""
    import keras

    keras.utils.set_random_seed(5)
    x = inp = keras.Input((4,))
    for _ in range(120):  # slow to load: every layer is rebuilt and traced
        x = keras.layers.Dense(4, activation="tanh")(x)
    model = keras.Model(inp, x)
    path = tmp_path / "deep.keras"
    model.save(str(path))
    xs = [np.ones((2, 4), np.float32)]
    w = ModelWorker(threads=1, request_timeout=0.2, load_timeout=300)
    try:
        await w.start()
        t0 = time.monotonic()
        out = await predict(w, "cold/1", str(path), "keras", {}, xs)
        assert time.monotonic() - t0 > 0.2  # the load took longer than a request may
        np.testing.assert_allclose(out[0], np.asarray(model(xs[0])), rtol=1e-5, atol=1e-6)
        t0 = time.monotonic()
        meta = await load(w, "cold/2", str(path), "keras", {})
        assert time.monotonic() - t0 > 0.2 and meta["inputs"]
    finally:
        await w.stop()


async def test_interpreter_without_tensorflow(tmp_path: Path) -> None:
    venv = tmp_path / "notf"
    subprocess.run([sys._base_executable if hasattr(sys, "_base_executable") else sys.executable,
                    "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    w = ModelWorker(python=str(py), start_timeout=30)
    t0 = time.monotonic()
    with pytest.raises(WorkerUnavailable) as ei:
        await predict(w, "x/1", "/nonexistent", "graphdef", {}, [np.zeros((1, 2))])
    assert time.monotonic() - t0 < 20
    assert "TensorFlow" in ei.value.message and str(py) in ei.value.message
    assert w.state == "failed" and w.last_error and "TensorFlow" in w.last_error
    with pytest.raises(WorkerUnavailable):  # backs off: fails fast, no respawn loop
        await w.start()
    st = await w.status()
    assert st["state"] == "failed" and st["tensorflow"] is None
    await w.stop()

    w = ModelWorker(python=str(tmp_path / "no-such-python"))
    with pytest.raises(WorkerUnavailable) as ei:
        await w.start()
    assert "no-such-python" in ei.value.message


async def test_worker_exits_when_server_dies(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import asyncio, os, sys
        from tfaas_jupyter.server.supervisor import ModelWorker
        async def main():
            w = ModelWorker(threads=1)
            await w.start()
            print(w.pid, flush=True)
            os._exit(0)
        asyncio.run(main())
    """)
    res = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    pid = int(res.stdout.split()[0])
    assert await _wait_gone(pid, 20), f"worker {pid} outlived its server"


async def test_many_concurrent_predicts(worker: ModelWorker, models) -> None:
    b = models["keras_file"]
    rng = np.random.default_rng(42)
    batches = [rng.normal(size=(1 + i % 7, tfmodels.N_IN)).astype(np.float32)
               for i in range(200)]
    outs = await asyncio.gather(*[
        predict(worker, "conc/1", str(b.path), b.fmt, {}, [x]) for x in batches
    ])
    for x, out in zip(batches, outs):
        np.testing.assert_allclose(out[0], b.reference([x])[0], rtol=1e-5)


async def test_the_loop_polls_for_a_quick_answer_then_sleeps(
        models, monkeypatch: pytest.MonkeyPatch) -> None:
    """``busy_poll``: the loop turns while an answer is awaited, stops when it came,
    and does not poll for answers slower than the window."""
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 3)
    turns: list[float] = []
    poll = ModelWorker._poll_answers

    def counted(self: ModelWorker, conn: Any) -> None:
        turns.append(time.perf_counter())
        poll(self, conn)

    monkeypatch.setattr(ModelWorker, "_poll_answers", counted)
    w = ModelWorker(threads=1, busy_poll=1.0)  # every answer here fits in the window
    try:
        await predict(w, "poll/1", str(b.path), b.fmt, b.params, xs)  # start and load
        assert (await w.status())["busy_poll_us"] == 1_000_000
        assert "--poll-us" in (await asyncio.to_thread(
            Path(f"/proc/{w.pid}/cmdline").read_bytes)).decode(errors="replace").split("\0")
        turns.clear()
        out = await predict(w, "poll/1", str(b.path), b.fmt, b.params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        polled = len(turns)
        assert polled > 1, "the loop did not poll while the answer was awaited"
        await asyncio.sleep(0.05)
        assert len(turns) <= polled + 1, "the loop kept polling after the answer came"
        assert not w._polling

        w.busy_poll = 1e-9  # no answer is that quick: the next call does not poll
        await predict(w, "poll/1", str(b.path), b.fmt, b.params, xs)
        turns.clear()
        out = await predict(w, "poll/1", str(b.path), b.fmt, b.params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        assert turns == []

        w.busy_poll = 0.0  # off
        out = await predict(w, "poll/1", str(b.path), b.fmt, b.params, xs)
        assert turns == []
    finally:
        await w.stop()


async def test_stop_is_idempotent_and_restartable(models) -> None:
    w = ModelWorker(threads=1)
    await w.stop()
    await w.start()
    pid = w.pid
    assert pid and w.state == "running"
    await w.stop()
    await w.stop()
    assert w.state == "stopped" and w.pid is None
    assert not _alive(pid)
    st = await w.status()
    assert st["state"] == "stopped" and st["pid"] is None


async def test_worker_started_on_another_loop_is_replaced(models) -> None:
    """As under pytest-jupyter: started on a loop that then stops running."""
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 2)
    w = ModelWorker(threads=1)
    other = asyncio.new_event_loop()
    try:
        await asyncio.to_thread(other.run_until_complete, w.start())
        old = w.pid
        assert old
        out = await asyncio.wait_for(
            predict(w, "loop/1", str(b.path), b.fmt, b.params, xs), 60)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        assert w.pid != old
        assert await _wait_gone(old, 10)
    finally:
        await w.stop()
        await asyncio.to_thread(_shutdown_loop, other)


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let the abandoned loop finish its leftovers (the old worker's tasks) and close it."""
    tasks = asyncio.all_tasks(loop)
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(asyncio.sleep(0.1))
    loop.close()


# ----------------------------------------------------------------------------- server side


async def test_supervisor_does_not_import_tensorflow() -> None:
    code = ("import sys, tfaas_jupyter.server.supervisor, tfaas_jupyter.worker.wire; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_kernelspec_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kdir = tmp_path / "kernels" / "lcg"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "LCG", "language": "python", "env": {"TFAAS_TEST_VAR": "1"},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    python, env = kernelspec_worker("lcg")
    assert python == sys.executable
    assert env["TFAAS_TEST_VAR"] == "1" and env.get("PATH") == os.environ.get("PATH")
    with pytest.raises(WorkerUnavailable):
        kernelspec_worker("no-such-kernel-xyz")


async def test_a_model_with_string_inputs_is_refused_clearly(tmp_path: Path) -> None:
    import tensorflow as tf

    class Words(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"length": tf.strings.length(text)}

    path = tfmodels.save_module(Words(), tmp_path / "words")
    w = ModelWorker(threads=1)
    try:
        with pytest.raises(ModelError) as ei:
            await load(w, "words/1", str(path), "savedmodel", {})
        assert "not numbers" in ei.value.message and "text" in ei.value.message
    finally:
        await w.stop()


class _Records(list):
    """A logger's records, kept in a list."""

    def logger(self, name: str) -> Any:
        import logging

        handler = logging.Handler()
        handler.emit = self.append  # type: ignore[method-assign]
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log


async def test_worker_stderr_is_logged_by_level(models) -> None:
    """TensorFlow's chatter on the worker's stderr goes to the log at DEBUG, other lines
    (real errors) at WARNING; the worker's stdout at DEBUG."""
    import logging
    from types import SimpleNamespace

    records = _Records()
    log = records.logger("tfaas-test-pump")
    chatter = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1764100000.123456   42 cpu_feature_guard.cc:210] This TensorFlow binary",
        "W0000 00:00:1764100000.123456   42 port.cc:153] oneDNN custom operations are on.",
        "2026-11-26 02:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom ops",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild",
        "INFO:tensorflow:Assets written to: /tmp/x/assets",
        "WARNING:absl:Compiled the loaded model, but the compiled metrics have yet to be built.",
    ]
    errors = ["E0000 00:00:1764100000.1 42 op_kernel.cc:1828] OP_REQUIRES failed",
              "Traceback (most recent call last):", "MemoryError: out of memory"]
    reader = asyncio.StreamReader()
    reader.feed_data("".join(line + "\n" for line in chatter + errors).encode())
    reader.feed_eof()
    conn = workerproc.WorkerProcess(SimpleNamespace(pid=7))  # type: ignore[arg-type]
    await conn.pump(reader, logging.WARNING, True, log)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, f"[worker 7] {line}") for line in chatter
    ] + [(logging.WARNING, f"[worker 7] {line}") for line in errors]
    assert list(conn.stderr_tail) == chatter + errors

    # A real worker with TensorFlow's C++ logs on: nothing above DEBUG from a start and
    # a prediction.
    records.clear()
    real = ModelWorker(threads=1, log=records.logger("tfaas-test-pump-real"),
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    g = models["graphdef"]
    try:
        await real.start()
        meta = await real.load(ModelRef(key="g/1", path=str(g.path), format=g.fmt,
                                        params=g.params))
        await predict(real, "g/1", str(g.path), g.fmt, g.params, _inputs(meta, 2))
    finally:
        await real.stop()
    forwarded = [r for r in records if r.getMessage().startswith("[worker ")]
    # which chatter TensorFlow prints depends on the CPU and the build (oneDNN's notice on
    # Intel CPUs, CUDA's stubs in a CUDA build, absl's pre-init line everywhere): some
    # came, and all of it at DEBUG
    chatter_lines = [r for r in forwarded
                     if launch.NOISE.match(r.getMessage().split("] ", 1)[1])]
    assert chatter_lines, [r.getMessage() for r in records]
    loud = [r.getMessage() for r in forwarded if r.levelno > logging.DEBUG]
    assert not loud, loud


# ----------------------------------------------------------------------------- the boundary


async def test_params_travel_with_loads_only(models, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prediction names its model by key alone; after an eviction or a restart the
    worker says 'not loaded' and the supervisor loads and sends it once more, so no
    request fails for it."""
    sent: list[dict[str, Any]] = []
    real_write = workerproc.write_frame_async

    async def recording_write(writer: Any, header: dict[str, Any], arrays: Any = ()) -> None:
        sent.append(header)
        await real_write(writer, header, arrays)

    monkeypatch.setattr(workerproc, "write_frame_async", recording_write)
    b = models["graphdef"]
    xs = _inputs({"inputs": [{"shape": [None, tfmodels.N_IN]}]}, 2)
    w = ModelWorker(threads=1, cache_size=1)
    try:
        for _ in range(3):
            out = await predict(w, "p/1", str(b.path), b.fmt, b.params, xs)
            np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        # heartbeats and the figures fetched after a load are monitoring, not requests
        ops = [h["op"] for h in sent if h["op"] not in ("ping", "status")]
        # the first prediction starts the worker, which holds nothing: load, then predict
        assert ops == ["load", "predict", "predict", "predict"]
        for h in sent:
            if h["op"] == "predict":
                assert set(h) == {"op", "key", "id"}
        load = next(h for h in sent if h["op"] == "load")
        assert load["params"] == b.params and load["path"] == str(b.path)

        sent.clear()  # evicted by another model (cache of one)
        await predict(w, "other/1", str(b.path), b.fmt, b.params, xs)
        out = await predict(w, "p/1", str(b.path), b.fmt, b.params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        assert [h["op"] for h in sent if h["op"] not in ("ping", "status")] == [
            "predict", "load", "predict"] * 2

        sent.clear()  # a new worker process holds nothing
        pid = w.pid
        assert pid
        os.kill(pid, signal.SIGKILL)
        assert await _wait_gone(pid)
        for _ in range(100):  # until the supervisor has seen the channel close
            if w.pid is None:
                break
            await asyncio.sleep(0.1)
        out = await predict(w, "p/1", str(b.path), b.fmt, b.params, xs)
        np.testing.assert_allclose(out[0], b.reference(xs)[0], rtol=1e-5)
        # after a crash the new worker reloads p/1 in the background; the request's own
        # load, when it comes before that one ends, finds it in the worker's cache
        ops = [h["op"] for h in sent if h["op"] not in ("ping", "status")]
        assert ops[-1] == "predict" and ops[:-1] in (["load"], ["load", "load"]), ops
        assert {h["key"] for h in sent if h["op"] == "load"} == {"p/1"}
        assert w.pid != pid
    finally:
        await w.stop()


async def test_a_model_out_of_memory_says_so(tmp_path: Path) -> None:
    """TensorFlow's ResourceExhausted is its own kind (HTTP 507), not a bad input; the
    worker keeps serving."""
    path = tfmodels.save_module(tfmodels.greedy_module(), tmp_path / "greedy")
    w = ModelWorker(threads=1)
    try:
        with pytest.raises(ModelError) as ei:
            await predict(w, "greedy/1", str(path), "savedmodel", {},
                          [np.array([[2.0**21]], np.float32)])
        assert ei.value.kind is ErrorKind.OUT_OF_MEMORY and ei.value.status == 507
        assert "out of memory" in ei.value.message
        out = await predict(w, "greedy/1", str(path), "savedmodel", {},
                            [np.array([[3.0]], np.float32)])
        assert out[0].tolist() == [[3.0]]
    finally:
        await w.stop()


async def test_tensorflow_is_set_up_without_spinning_threads() -> None:
    """The worker's TensorFlow: its thread count for intra- and inter-op work, and
    pools that sleep between ops (configure_tensorflow writes the eager context's
    ConfigProto through a private attribute: this fails if TensorFlow renames it)."""
    code = textwrap.dedent("""
        from tfaas_jupyter.worker import loaders
        loaders.configure_tensorflow(3)
        import tensorflow as tf
        from tensorflow.python.eager import context
        assert float(tf.reduce_sum(tf.constant([1.0, 2.0]))) == 3.0  # the context runs
        c = context.context().config
        print(c.experimental.disable_thread_spinning, c.intra_op_parallelism_threads,
              c.inter_op_parallelism_threads)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["True", "3", "3"]


async def test_models_run_on_the_single_threaded_executor_unless_they_cannot(
        tmp_path: Path) -> None:
    """A model's calls run its ops on the calling thread (TensorFlow's single-threaded
    executor); a TF1 graph with low-level control flow, which that executor refuses,
    falls back to the default one on its first call, with the right answer. The
    thread's call options are as before after each call."""
    seed = tmp_path / "seed"
    examples = Path(__file__).resolve().parents[1] / "examples"
    subprocess.run([sys.executable, str(examples / "make_seed_model.py"), str(seed)],
                   check=True, capture_output=True, timeout=300,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from tfaas_jupyter.worker import loaders
        loaders.configure_tensorflow(2)
        import tensorflow as tf
        from tensorflow.python.eager import context

        g = tf.Graph()
        with g.as_default():  # TF1 control flow: Enter/Exit/Switch/Merge nodes
            tf.compat.v1.disable_control_flow_v2()
            x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
            _, y = tf.compat.v1.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0),
                                           [tf.constant(0), x])
            tf.compat.v1.cond(tf.reduce_sum(y) > 0, lambda: y + 1, lambda: y - 1, name="out")
        assert {{"Enter", "Switch", "Merge"}} <= {{n.op for n in g.as_graph_def().node}}
        with open("{tmp_path}/loop.pb", "wb") as f:
            f.write(g.as_graph_def().SerializeToString())
        tf.compat.v1.enable_control_flow_v2()
        out = [n.name for n in g.as_graph_def().node if n.name.startswith("out/Merge")][0]
        loop = loaders.load("graphdef", "{tmp_path}/loop.pb",
                            {{"inputNode": "x", "outputNode": out}})
        rows = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, 1.0]], np.float32)
        got = loop.predict([rows])[0]
        want = rows * 8 + (1 if (rows * 8).sum() > 0 else -1)
        assert np.array_equal(got, want), (got, want)
        assert loop.executor == "", loop.executor

        params = json.load(open("{seed}/params.json"))
        vk = loaders.load("graphdef", "{seed}/model.pb", params)
        rows = np.random.default_rng(0).random((5, 42), dtype=np.float32)
        print(json.dumps({{"executor": vk.executor, "rows": rows.tolist(),
                          "got": vk.predict([rows])[0].tolist(),
                          "after": context.context().function_call_options.executor_type}}))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout.strip().splitlines()[-1])
    assert doc["executor"] == "SINGLE_THREADED_EXECUTOR" and doc["after"] in (None, "")
    want = load_example("make_seed_model").predict(np.array(doc["rows"], np.float32))
    np.testing.assert_allclose(np.array(doc["got"]), np.asarray(want).reshape(5, -1),
                               rtol=1e-5, atol=1e-6)
