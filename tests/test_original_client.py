"""The original TFaaS clients' requests, replayed byte for byte against our server.

The original ``tfaas_client.py`` is Python 2 only (urllib2, mimetools), so it cannot
run here: these tests build the exact bytes it sends (see the reference notes on its
wire format) and write them on a raw socket to the live test server. Each test runs
twice: with an ``Authorization: token`` header added (the original server had no
auth), and unmodified against a key-bearing URL ``{base_url}tfaas/key/<KEY>``.

What urllib2 + httplib put on the wire, per request:
* ``POST|DELETE|GET <path> HTTP/1.1``, then ``Accept-Encoding: identity`` and ``Host``
  (httplib), the request's headers with title-cased names, and ``Connection: close``;
* a body-carrying request without a Content-Type gets
  ``Content-Type: application/x-www-form-urlencoded`` (urllib2's default);
* the client's own headers: ``User-Agent: tfaas-client/1.1::python/2.7 (<user>)``,
  ``Accept: application/json`` for models/predict/image, and for uploads
  ``Content-Type: multipart/form-data; boundary=<mimetools boundary>``,
  ``Content-length`` and ``Content-Encoding: base64``.
* Multipart bodies are CRLF-joined lines: text fields first, then file parts whose
  filename is the full path from upload.json and whose Content-Type is guessed from
  the extension; a part guessed ``application/octet-stream`` (``.pb``, ``.keras``) is
  ``binascii.b2a_base64``'d, trailing newline included.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import mimetypes
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tfmodels
from helpers import seed_predict

pytestmark = pytest.mark.timeout(600)

USER_AGENT = "tfaas-client/1.1::python/2.7 (cmsuser)"
BOUNDARY = "127.0.1.1.1000.31337.1531143000.123.1"  # mimetools.choose_boundary()'s shape


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class OriginalClient:
    """Writes raw HTTP/1.1 requests as urllib2 would, reads the answer to EOF."""

    def __init__(self, port: int, base_url: str, token: str | None, key: str | None = None
                 ) -> None:
        self.port = port
        # with a key: the key-bearing URL is the client's --url, and no header is added
        self.base = f"{base_url}tfaas/key/{key}" if key else f"{base_url}tfaas"
        self.token = token

    async def send(self, method: str, endpoint: str, body: bytes | None = None,
                   headers: list[tuple[str, str]] | None = None) -> Answer:
        lines = [f"{method} {self.base}{endpoint} HTTP/1.1",
                 "Accept-Encoding: identity",
                 f"Host: localhost:{self.port}"]
        names = {k.lower() for k, _ in headers or []}
        if body is not None and "content-type" not in names:
            lines.append("Content-Type: application/x-www-form-urlencoded")  # urllib2
        if body is not None and "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in headers or []]
        lines.append(f"User-Agent: {USER_AGENT}")
        if self.token:
            lines.append(f"Authorization: token {self.token}")
        lines.append("Connection: close")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), timeout=300)
        finally:
            writer.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        reply_headers = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            reply_headers[k.strip().lower()] = v.strip()
        if "content-length" in reply_headers:
            payload = payload[: int(reply_headers["content-length"])]
        return Answer(int(status_line.split()[1]), reply_headers, payload)


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, Path]]) -> bytes:
    """The original client's MultiPartForm, as str(form) builds it."""
    lines: list[bytes] = []
    for name, value in fields:
        lines += [f"--{BOUNDARY}".encode(),
                  f'Content-Disposition: form-data; name="{name}"'.encode(), b"",
                  value.encode()]
    for name, path in files:
        ctype = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
        body = path.read_bytes()
        if ctype == "application/octet-stream":
            body = binascii.b2a_base64(body)  # with its trailing newline
        lines += [f"--{BOUNDARY}".encode(),
                  f'Content-Disposition: form-data; name="{name}"; filename="{path}"'.encode(),
                  f"Content-Type: {ctype}".encode(), b"", body]
    lines += [f"--{BOUNDARY}--".encode(), b""]
    return b"\r\n".join(lines)


def upload_headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
            ("Content-length", str(len(body))), ("Content-Encoding", "base64")]


async def upload_json(client: OriginalClient, spec: dict[str, str]) -> Answer:
    """--upload=upload.json: model/labels/params as file parts, anything else a field."""
    fields = [(k, v) for k, v in spec.items() if k not in ("model", "labels", "params")]
    files = [(k, Path(v)) for k, v in spec.items() if k in ("model", "labels", "params")]
    body = multipart(fields, files)
    return await client.send("POST", "/upload", body, upload_headers(body))


@pytest.fixture(params=["token", "key-url"])
def original(request, jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp
             ) -> OriginalClient:
    """The original client with our token header, or unmodified with a key URL as --url
    (the key made by the server's own key store, as ``POST tfaas/keys`` does)."""
    if request.param == "token":
        return OriginalClient(jp_http_port, jp_base_url, jp_serverapp.identity_provider.token)
    key, _ = jp_serverapp.web_app.settings["tfaas_keys"].create(
        "original", scopes=["predict", "manage"])
    return OriginalClient(jp_http_port, jp_base_url, None, key=key)


async def test_upload_predict_models_delete(original: OriginalClient, seed_dir: Path) -> None:
    spec = json.loads((seed_dir / "upload.json").read_text())
    assert Path(spec["model"]).is_absolute()  # full paths, as the original sends them
    answer = await upload_json(original, spec)
    assert answer.status == 200, answer.body
    assert answer.json()["name"] == "vk"

    # --predict: json.dumps(input.json), no Content-Type (urllib2's urlencoded default)
    doc = json.loads((seed_dir / "input.json").read_text())
    answer = await original.send("POST", "/json", json.dumps(doc).encode(),
                                 [("Accept", "application/json")])
    assert answer.status == 200, answer.body
    values = answer.json()
    assert isinstance(values, list) and len(values) == 1  # the bare list
    np.testing.assert_allclose(values, seed_predict(doc["values"]), rtol=1e-5)
    # "name" instead of "model" (python_client.md) is ignored: the default model answers
    doc_named = {"keys": doc["keys"], "values": doc["values"], "name": "vk"}
    answer = await original.send("POST", "/json", json.dumps(doc_named).encode())
    assert answer.status == 200 and answer.json() == values

    # --models (HEAD: GET) and the 2018 client's POST {}
    answer = await original.send("GET", "/models", None, [("Accept", "application/json")])
    assert answer.status == 200 and [m["name"] for m in answer.json()] == ["vk"]
    answer = await original.send("POST", "/models", b"{}", [("Accept", "application/json")])
    assert answer.status == 200 and [m["name"] for m in answer.json()] == ["vk"]

    # --delete=vk: DELETE /delete with a multipart field "model"
    body = multipart([("model", "vk")], [])
    answer = await original.send(
        "DELETE", "/delete", body,
        [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
         ("Content-length", str(len(body)))])
    assert answer.status == 200, answer.body
    answer = await original.send("GET", "/models")
    assert answer.json() == []


async def test_upload_other_model_files(original: OriginalClient, tmp_path: Path) -> None:
    """A .keras file guesses as octet-stream (so it goes base64), a .tar.gz as
    application/x-tar (so it goes raw under the same Content-Encoding: base64 header)."""
    kfile = tfmodels.make_keras_file(tmp_path / "kf")
    export = tfmodels.make_keras_export(tmp_path / "ex")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    assert mimetypes.guess_type(str(kfile.path))[0] is None
    assert mimetypes.guess_type(str(export.extra["tar_top"]))[0] == "application/x-tar"
    x = np.random.default_rng(0).normal(size=(1, tfmodels.N_IN)).astype(np.float32)
    for name, path, ref in (("kfile", kfile.path, kfile.reference),
                            ("export", export.extra["tar_top"], export.reference)):
        spec = {"name": name, "model": str(path), "labels": str(labels)}
        answer = await upload_json(original, spec)
        assert answer.status == 200, answer.body
        doc = {"keys": [f"x{i}" for i in range(tfmodels.N_IN)], "values": x[0].tolist(),
               "model": name}
        answer = await original.send("POST", "/json", json.dumps(doc).encode())
        assert answer.status == 200, answer.body
        np.testing.assert_allclose(answer.json(), ref([x])[0][0], rtol=1e-5, atol=1e-6)


async def test_bundle_upload(original: OriginalClient, tmp_path: Path) -> None:
    """--bundle=model.tar.gz: the file's bytes, Content-Encoding: gzip, octet-stream."""
    export = tfmodels.make_keras_export(tmp_path / "ex")
    folder = tmp_path / "mnistlike"
    shutil.copytree(export.path, folder)
    (folder / "params.json").write_text(json.dumps({"name": "mnistlike"}))
    bundle = tmp_path / "model.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:  # tar cfz model.tar.gz mnistlike
        tar.add(folder, arcname="mnistlike")
    body = bundle.read_bytes()
    answer = await original.send("POST", "/upload", body,
                                 [("Content-Encoding", "gzip"),
                                  ("Content-Type", "application/octet-stream")])
    assert answer.status == 200, answer.body
    assert answer.json()["name"] == "mnistlike"
    x = np.ones((1, tfmodels.N_IN), dtype=np.float32)
    answer = await original.send("POST", "/json", json.dumps(
        {"values": x[0].tolist(), "model": "mnistlike"}).encode())
    np.testing.assert_allclose(answer.json(), export.reference([x])[0][0], rtol=1e-5,
                               atol=1e-6)


async def test_image_request(original: OriginalClient, tmp_path: Path) -> None:
    """--image=/path/file.png --model=NAME: field model, file part image (image/png)."""
    from PIL import Image

    model_path, model = tfmodels.make_image_keras(tmp_path, classes=2, seed=5)
    labels = tmp_path / "labels.txt"
    labels.write_text("higgs\nqcd\n")
    answer = await upload_json(original, {"name": "ImageModel", "model": str(model_path),
                                          "labels": str(labels)})
    assert answer.status == 200, answer.body

    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    png = tmp_path / "file.png"
    Image.fromarray(pixels).save(png)
    body = multipart([("model", "ImageModel")], [("image", png)])
    answer = await original.send(
        "POST", "/image", body,
        [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}"),
         ("Content-length", str(len(body))), ("Accept", "application/json")])
    assert answer.status == 200, answer.body
    doc = answer.json()
    assert doc["filename"] == str(png)  # the full path, echoed
    probs = np.asarray(model(pixels[None].astype(np.float32), training=False))[0]
    assert doc["labels"][0]["label"] == ["higgs", "qcd"][int(np.argmax(probs))]
    assert doc["labels"][0]["probability"] == pytest.approx(float(probs.max()), rel=1e-4)


async def test_curl_docs_form_upload_and_errors(original: OriginalClient, seed_dir: Path) -> None:
    """The README's curl upload (-F, no Content-Encoding, raw .pb), then bad requests
    get a JSON {"error"} with a 4xx, as our policy says (the original answered 500)."""
    body = multipart([("name", "vk")], [])
    raw_model = (seed_dir / "model.pb").read_bytes()
    body = body[: -len(f"--{BOUNDARY}--\r\n")] + b"\r\n".join([
        f"--{BOUNDARY}".encode(),
        b'Content-Disposition: form-data; name="model"; filename="model.pb"',
        b"Content-Type: application/octet-stream", b"", raw_model,
        f"--{BOUNDARY}".encode(),
        b'Content-Disposition: form-data; name="params"; filename="params.json"',
        b"Content-Type: application/json", b"", (seed_dir / "params.json").read_bytes(),
        f"--{BOUNDARY}--".encode(), b""])
    answer = await original.send("POST", "/upload", body,
                                 [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")])
    assert answer.status == 200, answer.body

    answer = await original.send("POST", "/json", b"{not json")
    assert answer.status == 400 and "unable to unmarshal Row" in answer.json()["error"]
    answer = await original.send("POST", "/json", json.dumps(
        {"values": [1.0], "model": "nosuchmodel"}).encode())
    assert 400 <= answer.status < 500 and answer.json()["error"]
