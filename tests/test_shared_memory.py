"""Triton's system shared memory extension, with tritonclient's own utilities unchanged.

A real ``jupyter server`` subprocess (tritonclient.http is blocking). Each security
rule of docs/shared-memory.md has a test here that fails without it: the object's
owner, its mode, no symlink, the region within the object, offsets and sizes within
the region, registering only with the owner's token or a manage key, the setting
that turns regions off, and a client that dies with its region registered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from helpers import load_example
from servers import ServerProcess, jupyter_server

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(600)

SEED_IN = 42
OTHER_UID = 65534  # nobody


def seed_forward(rows: np.ndarray) -> np.ndarray:
    return np.asarray(load_example("make_seed_model").predict(rows), dtype=np.float32)


def upload_seed(server: ServerProcess, seed_dir: Path, name: str = "vk") -> None:
    params = json.loads((seed_dir / "params.json").read_text())
    body, ctype = encode_multipart({"name": name}, {
        "model": ("model.pb", (seed_dir / "model.pb").read_bytes(), "application/octet-stream"),
        "params": ("params.json", json.dumps({**params, "name": name}).encode(),
                   "application/json")})
    code, raw = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
    assert code == 200, raw


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, seed_dir: Path) -> Iterator[ServerProcess]:
    with jupyter_server(tmp_path_factory.mktemp("shm-home"), base_url="/user/ana/") as srv:
        upload_seed(srv, seed_dir)
        yield srv


@pytest.fixture
def triton(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(
        url=f"127.0.0.1:{server.port}/user/ana/tfaas", network_timeout=120)
    yield client
    client.unregister_system_shared_memory(headers=auth(server))
    client.close()


def auth(server: ServerProcess, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"token {token or server.token}"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def register(server: ServerProcess, region: str, key: str, byte_size: int, offset: int = 0,
             token: str | None = None) -> tuple[int, Any]:
    code, raw = server.request(
        "POST", f"tfaas/v2/systemsharedmemory/region/{region}/register",
        json.dumps({"key": key, "offset": offset, "byte_size": byte_size}).encode(),
        {"Content-Type": "application/json", **(auth(server, token) if token else {})})
    return code, json.loads(raw) if raw.strip() else None


def infer_doc(region: str, n: int, *, offset: int = 0, byte_size: int | None = None,
              out_region: str | None = None, out_size: int = 0) -> dict[str, Any]:
    params: dict[str, Any] = {"shared_memory_region": region, "shared_memory_offset": offset,
                              "shared_memory_byte_size": byte_size or n * SEED_IN * 4}
    doc: dict[str, Any] = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [n, SEED_IN],
                                       "parameters": params}]}
    if out_region:
        doc["outputs"] = [{"name": "output", "parameters": {
            "shared_memory_region": out_region, "shared_memory_byte_size": out_size}}]
    return doc


def input_name(server: ServerProcess) -> str:
    return server.call("GET", "tfaas/v2/models/vk")["inputs"][0]["name"]


def output_name(server: ServerProcess) -> str:
    return server.call("GET", "tfaas/v2/models/vk")["outputs"][0]["name"]


def infer(server: ServerProcess, doc: dict[str, Any]) -> tuple[int, Any]:
    doc = json.loads(json.dumps(doc).replace('"name": "x"', f'"name": "{input_name(server)}"')
                     .replace('"name": "output"', f'"name": "{output_name(server)}"'))
    return server.json("POST", "tfaas/v2/models/vk/infer", doc)


@pytest.fixture
def region_file() -> Iterator[Any]:
    """Make objects under /dev/shm (removed afterwards): ``make(name, size, mode)``."""
    made: list[Path] = []

    def make(name: str, size: int, mode: int = 0o600) -> Path:
        path = Path("/dev/shm") / name
        with open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode), "wb") as f:
            f.truncate(size)
        os.chmod(path, mode)
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink(missing_ok=True)


# -- tritonclient, unchanged ----------------------------------------------------------


def test_tritonclient_shared_memory_round_trip(server: ServerProcess,
                                               triton: httpclient.InferenceServerClient) -> None:
    """Register, infer with inputs and outputs in shared memory, status, unregister:
    the outputs are exactly the seed model's numpy forward pass."""
    headers = auth(server)
    n = 5000
    rows = np.random.default_rng(1).normal(size=(n, SEED_IN)).astype(np.float32)
    in_key, out_key = f"/{unique('tfaas-in')}", f"/{unique('tfaas-out')}"
    in_handle = shm.create_shared_memory_region("rows", in_key, rows.nbytes)
    out_handle = shm.create_shared_memory_region("answers", out_key, n * 4)
    try:
        shm.set_shared_memory_region(in_handle, [rows])
        triton.register_system_shared_memory("rows", in_key, rows.nbytes, headers=headers)
        triton.register_system_shared_memory("answers", out_key, n * 4, headers=headers)
        status = triton.get_system_shared_memory_status(headers=headers)
        assert {(r["name"], r["key"], r["byte_size"]) for r in status} == {
            ("rows", in_key, rows.nbytes), ("answers", out_key, n * 4)}
        meta = triton.get_model_metadata("vk", headers=headers)
        tensor = httpclient.InferInput(meta["inputs"][0]["name"], [n, SEED_IN], "FP32")
        tensor.set_shared_memory("rows", rows.nbytes)
        wanted = httpclient.InferRequestedOutput(meta["outputs"][0]["name"], binary_data=True)
        wanted.set_shared_memory("answers", n * 4)
        result = triton.infer("vk", [tensor], outputs=[wanted], headers=auth(server))
        out = result.get_output(meta["outputs"][0]["name"])
        assert out["parameters"]["shared_memory_byte_size"] == n * 4
        got = shm.get_contents_as_numpy(out_handle, np.float32, [n, 1])
        np.testing.assert_allclose(got, seed_forward(rows), rtol=1e-5, atol=1e-6)
        # bit for bit what the same rows sent as binary tensors answer
        sent = httpclient.InferInput(meta["inputs"][0]["name"], [n, SEED_IN], "FP32")
        sent.set_data_from_numpy(rows, binary_data=True)
        # (a fresh headers dict per infer: tritonclient writes its header length into it)
        by_socket = triton.infer("vk", [sent], headers=auth(server))
        np.testing.assert_array_equal(got, by_socket.as_numpy(meta["outputs"][0]["name"]))
        # the input only in shared memory, the output back in the answer
        result = triton.infer("vk", [tensor], headers=auth(server))
        np.testing.assert_array_equal(result.as_numpy(meta["outputs"][0]["name"]), got)
        triton.unregister_system_shared_memory("rows", headers=headers)
        status = triton.get_system_shared_memory_status(headers=headers)
        assert [r["name"] for r in status] == ["answers"]
        with pytest.raises(Exception, match="no shared memory region 'rows'"):
            triton.infer("vk", [tensor], headers=auth(server))
        triton.unregister_system_shared_memory(headers=headers)
        assert triton.get_system_shared_memory_status(headers=headers) == []
    finally:
        shm.destroy_shared_memory_region(in_handle)
        shm.destroy_shared_memory_region(out_handle)


# -- the rules ---------------------------------------------------------------------------


def test_another_users_region_is_refused(server: ServerProcess, region_file) -> None:
    name = unique("tfaas-other")
    path = region_file(name, 4096)
    assert register(server, "mine", f"/{name}", 4096)[0] == 200  # ours: taken
    server.request("POST", "tfaas/v2/systemsharedmemory/region/mine/unregister")
    os.chown(path, OTHER_UID, OTHER_UID)
    code, answer = register(server, "theirs", f"/{name}", 4096)
    assert code == 400 and "another user" in answer["error"]


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_region_others_may_write_is_refused(server: ServerProcess, region_file,
                                              mode: int) -> None:
    name = unique("tfaas-mode")
    region_file(name, 4096, mode)
    code, answer = register(server, "loose", f"/{name}", 4096)
    assert code == 400 and "writable by other users" in answer["error"]
    os.chmod(Path("/dev/shm") / name, 0o640)  # others may read: the owner's choice
    assert register(server, "loose", f"/{name}", 4096)[0] == 200
    server.request("POST", "tfaas/v2/systemsharedmemory/region/loose/unregister")


def test_a_symlink_is_refused(server: ServerProcess, region_file) -> None:
    real = unique("tfaas-real")
    region_file(real, 4096)
    link = Path("/dev/shm") / unique("tfaas-link")
    link.symlink_to(Path("/dev/shm") / real)
    try:
        code, answer = register(server, "linked", f"/{link.name}", 4096)
        assert code == 400 and "symbolic link" in answer["error"]
    finally:
        link.unlink()


@pytest.mark.parametrize("key", ["/../etc/passwd", "/a/b", "", "/", 7])
def test_a_key_is_one_object_of_dev_shm(server: ServerProcess, key: Any) -> None:
    code, answer = register(server, "odd", key, 16)
    assert code == 400 and "'key'" in answer["error"]


def test_bad_offsets_and_sizes_are_400(server: ServerProcess, region_file) -> None:
    name = unique("tfaas-size")
    n = 10
    path = region_file(name, n * SEED_IN * 4)
    # the region must lie within the object
    for offset, size in ((0, n * SEED_IN * 4 + 1), (8, n * SEED_IN * 4), (-1, 16), (0, 0)):
        code, answer = register(server, "r", f"/{name}", size, offset)
        assert code == 400, (offset, size, answer)
    assert register(server, "r", f"/{name}", n * SEED_IN * 4)[0] == 200
    assert register(server, "r", f"/{name}", 16)[0] == 400  # registered twice
    rows = np.random.default_rng(2).normal(size=(n, SEED_IN)).astype(np.float32)
    path.write_bytes(rows.tobytes())
    code, answer = infer(server, infer_doc("r", n))
    assert code == 200, answer
    np.testing.assert_allclose(np.asarray(answer["outputs"][0]["data"], np.float32),
                               seed_forward(rows).ravel(), rtol=1e-5, atol=1e-6)
    for doc in (infer_doc("r", n, offset=4),                   # runs past the region
                infer_doc("r", n, byte_size=n * SEED_IN * 4 - 4),  # not the shape's size
                infer_doc("r", n, offset=-4),
                infer_doc("nope", n),                          # not registered
                infer_doc("r", n, out_region="r", out_size=2)):  # output does not fit
        code, answer = infer(server, doc)
        assert code == 400 and "error" in answer, doc
    # an object shrunk under its region: a 400, not a bus error in the server
    os.truncate(path, 64)
    code, answer = infer(server, infer_doc("r", n))
    assert code == 400 and "smaller than its region" in answer["error"]
    assert server.proc.poll() is None
    server.request("POST", "tfaas/v2/systemsharedmemory/region/r/unregister")


def test_registering_needs_the_owner_or_a_manage_key(server: ServerProcess,
                                                     region_file) -> None:
    name = unique("tfaas-keys")
    region_file(name, 4096)
    predict_key = server.call("POST", "tfaas/keys", {"name": unique("p"),
                                                     "scopes": ["predict"]})["key"]
    manage_key = server.call("POST", "tfaas/keys", {"name": unique("m"),
                                                    "scopes": ["manage"]})["key"]
    code, _ = register(server, "k", f"/{name}", 4096, token=predict_key)
    assert code == 403
    code, _ = server.request("GET", "tfaas/v2/systemsharedmemory/status",
                             headers=auth(server, predict_key))
    assert code == 403
    assert register(server, "k", f"/{name}", 4096, token=manage_key)[0] == 200
    server.request("POST", "tfaas/v2/systemsharedmemory/unregister")


def test_regions_can_be_turned_off(tmp_path: Path, region_file) -> None:
    name = unique("tfaas-off")
    region_file(name, 4096)
    with jupyter_server(tmp_path / "home", args=["--TFaaSApp.allow_client_shm=False"]) as srv:
        code, answer = register(srv, "off", f"/{name}", 4096)
        assert code == 403 and "turned off" in answer["error"]
        assert srv.call("GET", "tfaas/v2/health/live") == {"live": True}


def test_a_captured_input_is_what_was_scored_not_what_the_region_holds_later(
        tmp_path: Path, seed_dir: Path, region_file) -> None:
    """An input read from a client's region is a view of memory the client may write
    again as soon as it has its answer; the capture, written up to a second later,
    must hold the values that were scored."""
    import pandas as pd

    n = 3
    scored = np.random.default_rng(7).normal(size=(n, SEED_IN)).astype(np.float32)
    name = unique("tfaas-cap")
    path = region_file(name, scored.nbytes)
    with jupyter_server(tmp_path / "home", args=[
            f"--TFaaSApp.capture_dir={tmp_path / 'capture'}"]) as srv:
        upload_seed(srv, seed_dir)
        path.write_bytes(scored.tobytes())
        assert register(srv, "rows", f"/{name}", scored.nbytes)[0] == 200
        code, answer = infer(srv, infer_doc("rows", n))
        assert code == 200, answer
        path.write_bytes(np.full_like(scored, -1.0).tobytes())  # the client's next rows
        code, raw = srv.request("GET", "tfaas/capture/vk")
        assert code == 200
        srv.request("POST", "tfaas/v2/systemsharedmemory/unregister")
    import io
    (row,) = [r for _, r in pd.read_parquet(io.BytesIO(raw)).iterrows()]
    column = next(c for c in row.index if c.startswith("input:") and not c.endswith(":shape"))
    np.testing.assert_array_equal(row[column], scored.ravel())
    output = next(c for c in row.index if c.startswith("output:") and not c.endswith(":shape"))
    np.testing.assert_array_equal(row[output], np.asarray(answer["outputs"][0]["data"],
                                                          np.float32).ravel())
    np.testing.assert_allclose(row[output], seed_forward(scored).ravel(), rtol=1e-5)


_DYING_CLIENT = textwrap.dedent("""
    import os, sys, numpy as np
    import tritonclient.http as httpclient
    import tritonclient.utils.shared_memory as shm
    url, token, key, n, unlink = sys.argv[1:6]
    n = int(n)
    rows = np.random.default_rng(5).normal(size=(n, 42)).astype(np.float32)
    handle = shm.create_shared_memory_region("dying", key, rows.nbytes)
    shm.set_shared_memory_region(handle, [rows])
    client = httpclient.InferenceServerClient(url=url)
    client.register_system_shared_memory("dying", key, rows.nbytes,
                                         headers={"Authorization": "token " + token})
    if unlink == "1":
        os.unlink("/dev/shm" + key)
    print("registered", flush=True)
    os.kill(os.getpid(), 9)
""")


@pytest.mark.parametrize("unlink", [False, True])
def test_a_client_killed_with_its_region_registered(server: ServerProcess, unlink: bool) -> None:
    """The server and the worker go on serving, from the region too (its memory stays
    mapped after the client is gone, even when its object was removed)."""
    key, n = f"/{unique('tfaas-dying')}", 300
    worker = server.worker_pid()
    proc = subprocess.run(
        [sys.executable, "-c", _DYING_CLIENT, f"127.0.0.1:{server.port}/user/ana/tfaas",
         server.token, key, str(n), "1" if unlink else "0"],
        capture_output=True, text=True, timeout=120)
    try:
        assert proc.returncode == -signal.SIGKILL and "registered" in proc.stdout, proc.stderr
        rows = np.random.default_rng(5).normal(size=(n, SEED_IN)).astype(np.float32)
        code, answer = infer(server, infer_doc("dying", n))
        assert code == 200, answer
        np.testing.assert_allclose(np.asarray(answer["outputs"][0]["data"], np.float32),
                                   seed_forward(rows).ravel(), rtol=1e-5, atol=1e-6)
        code, _ = server.request("POST", "tfaas/v2/systemsharedmemory/region/dying/unregister")
        assert code == 200
        code, answer = server.json("POST", "tfaas/json",
                                   {"model": "vk", "values": rows[0].tolist()})
        assert code == 200 and server.proc.poll() is None
        assert worker is None or server.worker_pid() == worker
    finally:
        Path("/dev/shm" + key).unlink(missing_ok=True)


# -- in place: the worker's frame carries where the rows are, not the rows --------------


def test_the_worker_frame_names_the_region_instead_of_its_bytes(region_file) -> None:
    from tfaas_jupyter.server.shm import SharedMemoryRegions, worker_frame
    from tfaas_jupyter.worker.regions import region_inputs

    name = unique("tfaas-frame")
    rows = np.random.default_rng(9).normal(size=(100, SEED_IN)).astype(np.float32)
    path = region_file(name, 64 + rows.nbytes)
    with open(path, "r+b") as f:
        f.seek(64)
        f.write(rows.tobytes())
    regions = SharedMemoryRegions()
    regions.register("r", {"key": f"/{name}", "offset": 64, "byte_size": rows.nbytes})
    try:
        params = {"shared_memory_region": "r", "shared_memory_offset": 0,
                  "shared_memory_byte_size": rows.nbytes}
        tensor = regions.input_array(params, "input 'x'", np.dtype("<f4"), [100, SEED_IN])
        other = np.ones((3, 2), np.int64)
        header, sent = worker_frame([tensor[10:], other])
        ref, none = header["regions"]
        assert none is None and len(sent) == 1 and sent[0] is other  # only `other` is sent
        assert ref["offset"] == 64 + 10 * SEED_IN * 4 and ref["shape"] == [90, SEED_IN]
        mapped, again = region_inputs(header["regions"], sent)
        np.testing.assert_array_equal(mapped, rows[10:])
        assert again is other and not mapped.flags.writeable
        # an array made from the view (stacked by the batcher) lies elsewhere: sent
        stacked = np.concatenate([tensor, tensor])
        assert worker_frame([stacked]) == ({}, [stacked])
        # the object replaced under the same descriptor number: refused, not misread
        with pytest.raises(Exception, match="replaced"):
            region_inputs([{**ref, "ino": ref["ino"] + 1}], [])
    finally:
        regions.close()
