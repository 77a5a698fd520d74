"""V2 binary requests scored while their body arrives (tfaas_jupyter/server/protocols/v2stream.py).

A big one-input binary request is cut into pieces of rows sent to the worker as the
body arrives; the answer must be exactly the whole request's, the cutting must be real
(worker calls counted), and everything around a stream (authentication before the body,
errors found mid-body, a client that leaves, a slow client) must behave.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TFaaSCaller, load_example

from tfaas_jupyter.server.protocols.v2stream import PIECE_BYTES

pytestmark = pytest.mark.timeout(600)

N_IN = 42
ROW_BYTES = N_IN * 4
PIECE_ROWS = PIECE_BYTES // ROW_BYTES


def seed_forward(rows: np.ndarray) -> np.ndarray:
    """The seed model's outputs by the seed script's numpy forward pass."""
    return np.asarray(load_example("make_seed_model").predict(rows), dtype=np.float32)


async def upload_seed(tfaas: TFaaSCaller, seed_dir: Path, name: str, **params: object) -> None:
    base = json.loads((seed_dir / "params.json").read_text())
    reply = await tfaas.upload(name, (seed_dir / "model.pb").read_bytes(),
                               params={**base, **params, "name": name})
    assert reply.code == 200, reply.body


async def input_name(tfaas: TFaaSCaller, model: str) -> str:
    reply = await tfaas.call("GET", f"v2/models/{model}")
    assert reply.code == 200, reply.body
    return reply.json()["inputs"][0]["name"]


def binary_request(name: str, rows: np.ndarray, *, binary_output: bool = True,
                   datatype: str = "FP32") -> tuple[bytes, dict[str, str]]:
    raw = rows.astype("<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": name, "shape": list(rows.shape), "datatype": datatype,
                    "parameters": {"binary_data_size": len(raw)}}],
        "parameters": {"binary_data_output": binary_output},
    }).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}


def outputs_of(reply_body: bytes, header_length: int) -> tuple[dict, np.ndarray]:
    doc = json.loads(reply_body[:header_length])
    return doc, np.frombuffer(reply_body[header_length:], dtype="<f4")


async def worker_calls(tfaas: TFaaSCaller, key: str) -> int:
    models = (await tfaas.call("GET", "status")).json()["batching"]["models"]
    return models.get(key, {}).get("worker_calls", 0)


async def test_a_big_binary_request_is_scored_in_pieces(
        tfaas: TFaaSCaller, seed_dir: Path) -> None:
    await upload_seed(tfaas, seed_dir, "vk")
    await upload_seed(tfaas, seed_dir, "whole", batching=False)
    name = await input_name(tfaas, "vk")
    n = 4 * PIECE_ROWS + 123  # four full pieces and a remainder
    rows = np.random.default_rng(7).random((n, N_IN), dtype=np.float32)
    expected = seed_forward(rows).reshape(-1)

    before = await worker_calls(tfaas, "vk/1")
    body, headers = binary_request(name, rows)
    reply = await tfaas.call("POST", "v2/models/vk/infer", body, headers)
    assert reply.code == 200, reply.body[:300]
    doc, got = outputs_of(reply.body, int(reply.headers["Inference-Header-Content-Length"]))
    assert doc["model_name"] == "vk" and doc["outputs"][0]["shape"][0] == n
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == got.nbytes == n * 4
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # really cut: one worker call per piece, in row order (the outputs above match)
    assert await worker_calls(tfaas, "vk/1") - before == 5

    # JSON outputs of the same streamed request
    body, headers = binary_request(name, rows, binary_output=False)
    reply = await tfaas.call("POST", "v2/models/vk/infer", body, headers)
    assert reply.code == 200, reply.body[:300]
    data = np.asarray(reply.json()["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-6)

    # a model that says its rows are not independent is scored whole: one call
    before = await worker_calls(tfaas, "whole/1")
    body, headers = binary_request(name, rows)
    reply = await tfaas.call("POST", "v2/models/whole/infer", body, headers)
    assert reply.code == 200, reply.body[:300]
    _, got = outputs_of(reply.body, int(reply.headers["Inference-Header-Content-Length"]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert await worker_calls(tfaas, "whole/1") - before == 1

    # a small binary request is one call, as before
    before = await worker_calls(tfaas, "vk/1")
    body, headers = binary_request(name, rows[:10])
    reply = await tfaas.call("POST", "v2/models/vk/infer", body, headers)
    assert reply.code == 200
    _, got = outputs_of(reply.body, int(reply.headers["Inference-Header-Content-Length"]))
    np.testing.assert_allclose(got, expected[:10], rtol=1e-5, atol=1e-6)
    assert await worker_calls(tfaas, "vk/1") - before == 1


async def test_errors_found_while_the_body_arrives(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    await upload_seed(tfaas, seed_dir, "vk")
    name = await input_name(tfaas, "vk")
    rows = np.zeros((3 * PIECE_ROWS, N_IN), dtype=np.float32)
    cases = [
        ("v2/models/vk/infer", binary_request(name, rows, datatype="FP64"), 400,
         "shape"),  # FP64 of this shape is twice the bytes sent
        ("v2/models/vk/infer", binary_request(name, rows[:, :40]), 400, "takes shape"),
        ("v2/models/vk/infer", binary_request("nope", rows), 400, "nope"),
        ("v2/models/absent/infer", binary_request(name, rows), 404, "absent"),
        ("v2/models/vk/versions/9/infer", binary_request(name, rows), 404, "9"),
    ]
    for path, (body, headers), status, words in cases:
        reply = await tfaas.call("POST", path, body, headers)
        assert reply.code == status, (path, reply.body[:300])
        assert words in reply.json()["error"], reply.body[:300]
    # a header length past the body's end, and a header that is not JSON
    body, headers = binary_request(name, rows[:2])
    reply = await tfaas.call("POST", "v2/models/vk/infer", body,
                             {**headers, "Inference-Header-Content-Length": str(len(body) + 1)})
    assert reply.code == 400 and "Inference-Header-Content-Length" in reply.json()["error"]
    reply = await tfaas.call("POST", "v2/models/vk/infer", b"not json" + bytes(100),
                             {"Inference-Header-Content-Length": "8"})
    assert reply.code == 400, reply.body
    # an empty header before a big binary body: refused, the body read and dropped
    body, headers = binary_request(name, rows)
    reply = await tfaas.call("POST", "v2/models/vk/infer", body,
                             {**headers, "Inference-Header-Content-Length": "0"})
    assert reply.code == 400, reply.body[:300]
    # and the server keeps serving, streamed requests included
    body, headers = binary_request(name, rows)
    reply = await tfaas.call("POST", "v2/models/vk/infer", body, headers)
    assert reply.code == 200, reply.body[:300]


async def raw_post(port: int, path: str, headers: dict[str, str], length: int
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a POST whose body is still to be written."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {path} HTTP/1.1", f"Host: localhost:{port}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One answer off a raw connection: status, headers (lower-case names), body."""
    status = await asyncio.wait_for(reader.readline(), 120)
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return int(status.split()[1]), headers, body


async def read_binary_answer(reader: asyncio.StreamReader) -> tuple[dict, np.ndarray]:
    """A 200 answer with binary outputs, read off a raw connection."""
    status, headers, answer = await read_answer(reader)
    assert status == 200, answer[:300]
    return outputs_of(answer, int(headers["inference-header-content-length"]))


async def test_no_credentials_are_refused_before_the_body(
        tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str) -> None:
    await upload_seed(tfaas, seed_dir, "vk")
    name = await input_name(tfaas, "vk")
    body, headers = binary_request(name, np.zeros((3 * PIECE_ROWS, N_IN), np.float32))
    reader, writer = await raw_post(jp_http_port, f"{jp_base_url}tfaas/v2/models/vk/infer",
                                    headers, len(body))
    try:  # nothing of the body sent: the answer comes anyway
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.split()[1] == b"403", status
    finally:
        writer.close()


async def test_a_slow_or_departed_client_holds_nothing(
        tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str,
        jp_serverapp) -> None:
    await upload_seed(tfaas, seed_dir, "vk")
    await upload_seed(tfaas, seed_dir, "other")
    name = await input_name(tfaas, "vk")
    rows = np.random.default_rng(3).random((6 * PIECE_ROWS, N_IN), dtype=np.float32)
    body, headers = binary_request(name, rows)
    headers["Authorization"] = f"token {jp_serverapp.identity_provider.token}"
    split = len(body) // 2
    before = await worker_calls(tfaas, "vk/1")
    reader, writer = await raw_post(jp_http_port, f"{jp_base_url}tfaas/v2/models/vk/infer",
                                    headers, len(body))
    writer.write(body[:split])
    await writer.drain()
    deadline = asyncio.get_running_loop().time() + 120
    while await worker_calls(tfaas, "vk/1") == before:  # its first pieces are scored
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    # the half-sent request holds no channel: another model answers meanwhile
    one = rows[:1].tolist()
    reply = await tfaas.predict({"model": "other", "values": one})
    assert reply.code == 200, reply.body
    np.testing.assert_allclose(reply.json(), seed_forward(rows[:1]).tolist(), rtol=1e-5)
    # the rest arrives: the answer is whole and exact
    writer.write(body[split:])
    await writer.drain()
    _, got = await read_binary_answer(reader)
    np.testing.assert_allclose(got, seed_forward(rows).reshape(-1), rtol=1e-5, atol=1e-6)
    writer.close()

    # a client that leaves half-way: its request ends, its slot is given back
    service = jp_serverapp.web_app.settings["tfaas_service"]
    reader, writer = await raw_post(jp_http_port, f"{jp_base_url}tfaas/v2/models/vk/infer",
                                    headers, len(body))
    writer.write(body[:split])
    await writer.drain()
    while service.in_flight == 0:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    writer.close()
    while service.in_flight:
        assert asyncio.get_running_loop().time() < deadline, "the slot was never given back"
        await asyncio.sleep(0.05)
    body, headers = binary_request(name, rows)
    reply = await tfaas.call("POST", "v2/models/vk/infer", body, headers)
    assert reply.code == 200, reply.body[:300]


async def test_keys_stream_only_their_models(tfaas: TFaaSCaller, seed_dir: Path,
                                             jp_http_port: int, jp_base_url: str) -> None:
    """A predict-only key streams a big request to its model, by header or key URL, and
    is refused before the body for another model."""
    await upload_seed(tfaas, seed_dir, "vk")
    await upload_seed(tfaas, seed_dir, "other")
    name = await input_name(tfaas, "vk")
    reply = await tfaas.call("POST", "keys", json.dumps({"name": "grid", "models": ["vk"]})
                             .encode())
    assert reply.code == 200, reply.body
    key = reply.json()["key"]
    rows = np.random.default_rng(5).random((3 * PIECE_ROWS, N_IN), dtype=np.float32)
    expected = seed_forward(rows).reshape(-1)
    body, headers = binary_request(name, rows)
    before = await worker_calls(tfaas, "vk/1")
    for path, auth in ((f"{jp_base_url}tfaas/v2/models/vk/infer", f"Bearer {key}"),
                       (f"{jp_base_url}tfaas/key/{key}/v2/models/vk/infer", None)):
        reader, writer = await raw_post(
            jp_http_port, path, {**headers, **({"Authorization": auth} if auth else {})},
            len(body))
        writer.write(body)
        await writer.drain()
        _, got = await read_binary_answer(reader)
        writer.close()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert await worker_calls(tfaas, "vk/1") - before == 2 * 3  # streamed: 3 pieces each
    # another model: refused at once, nothing of the body sent
    reader, writer = await raw_post(jp_http_port, f"{jp_base_url}tfaas/v2/models/other/infer",
                                    {**headers, "Authorization": f"Bearer {key}"}, len(body))
    try:
        status = await asyncio.wait_for(reader.readline(), 30)
        assert status.split()[1] == b"403", status
    finally:
        writer.close()


def request_head(path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: localhost:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_one_connection_carries_streamed_requests_like_any_other(
        tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str,
        jp_serverapp) -> None:
    """The streaming handler reads the body off the connection itself: a client waiting
    for ``100 Continue`` gets it, a failed request's unread body is dropped, and the
    connection stays in step for the requests after it (pipelined ones too)."""
    await upload_seed(tfaas, seed_dir, "vk")
    name = await input_name(tfaas, "vk")
    rows = np.random.default_rng(7).random((3 * PIECE_ROWS + 5, N_IN), dtype=np.float32)
    expected = seed_forward(rows).reshape(-1)
    body, headers = binary_request(name, rows)
    path = f"{jp_base_url}tfaas/v2/models/vk/infer"
    auth = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    plain = {**headers, **auth, "Content-Length": str(len(body))}
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    try:
        # curl's way with a big body: headers, then the body once the server says so
        writer.write(request_head(path, jp_http_port, {**plain, "Expect": "100-continue"}))
        await writer.drain()
        status, _, _ = await read_answer(reader)
        assert status == 100
        writer.write(body)
        _, got = await read_binary_answer(reader)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

        # a request refused at its header: the rest of its body is read and dropped
        bad, bad_headers = binary_request(name, rows[:, :40])
        writer.write(request_head(path, jp_http_port,
                                  {**bad_headers, **auth, "Content-Length": str(len(bad))}))
        writer.write(bad)
        status, _, answer = await read_answer(reader)
        assert status == 400 and "takes shape" in json.loads(answer)["error"], answer

        # two requests written back to back: each gets its own answer, in order
        writer.write(request_head(path, jp_http_port, plain) + body
                     + f"GET {jp_base_url}tfaas/status HTTP/1.1\r\n"
                       f"Host: localhost:{jp_http_port}\r\n"
                       f"Authorization: {auth['Authorization']}\r\n\r\n".encode())
        _, got = await read_binary_answer(reader)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        status, _, answer = await read_answer(reader)
        assert status == 200 and "batching" in json.loads(answer), answer[:300]
    finally:
        writer.close()


async def test_streamed_bodies_keep_the_servers_limits(
        tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int, jp_base_url: str,
        jp_serverapp) -> None:
    """Jupyter's ``max_body_size`` holds for a body the handler reads itself, and a body
    with a transfer coding is never read as a plain one."""
    await upload_seed(tfaas, seed_dir, "vk")
    name = await input_name(tfaas, "vk")
    body, headers = binary_request(name, np.zeros((3 * PIECE_ROWS, N_IN), np.float32))
    path = f"{jp_base_url}tfaas/v2/models/vk/infer"
    auth = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    saved = jp_serverapp.max_body_size
    jp_serverapp.max_body_size = len(body) - 1
    try:
        reader, writer = await raw_post(jp_http_port, path, {**headers, **auth}, len(body))
        status, _, answer = await read_answer(reader)  # at once, nothing of the body sent
        writer.close()
    finally:
        jp_serverapp.max_body_size = saved
    assert status == 413 and "max_body_size" in json.loads(answer)["error"], answer

    # Content-Length and chunked together: refused by Tornado before the body, not read
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(request_head(path, jp_http_port, {
        **headers, **auth, "Content-Length": str(len(body)), "Transfer-Encoding": "chunked"}))
    status, _, _ = await read_answer(reader)
    writer.close()
    assert status == 400
    # chunked alone: buffered and scored whole (one worker call)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    before = await worker_calls(tfaas, "vk/1")
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(request_head(path, jp_http_port, {**headers, **auth,
                                                   "Transfer-Encoding": "chunked"}) + chunked)
    _, got = await read_binary_answer(reader)
    writer.close()
    np.testing.assert_allclose(got, seed_forward(np.zeros((1, N_IN), np.float32))[0, 0],
                               rtol=1e-5)
    assert len(got) == 3 * PIECE_ROWS
    assert await worker_calls(tfaas, "vk/1") - before == 1
