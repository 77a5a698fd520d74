"""Hostile input: each gets a 4xx naming the problem, nothing is written outside the
model directory, nothing is left in .staging, and the server keeps serving."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import TFaaSCaller

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(600)

BAD_NAMES = [
    "..", "../evil", "a/b", "/abs", "a\\b", "evil\x00", "．．", "ｖｋ", "vk\u202egpj",
    "v\u200bk", "vк", "-dash", ".hidden", "a" * 101, "", " ",
]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def evil_files(*roots: Path) -> list[Path]:
    found = []
    for root in roots:
        # the hostile members' names all start with "evil" (not e.g. a time zone's file
        # Libreville in another test's virtualenv)
        found += [p for p in root.rglob("evil*")]
    return found


@pytest.fixture
def before(tmp_path: Path) -> set[str]:
    """The test's tmp tree (server config, data, models) before the hostile requests."""
    return tree(tmp_path)


def assert_clean(model_dir: Path, tmp_path: Path, before: set[str]) -> None:
    assert not list((model_dir / ".staging").glob("*")), "leftovers in .staging"
    assert not list((model_dir / ".trash").glob("*")), "leftovers in .trash"
    assert evil_files(tmp_path.parent, model_dir) == []
    assert not list(Path("/tmp").glob("evil*"))
    # keras's own config file, and matplotlib's font cache (keras imports it when it is
    # installed), as TensorFlow writes them for any user
    new = {p for p in tree(tmp_path) - before
           if not p.startswith(("models", "home/.keras", "home/.cache", "home/.config"))}
    assert new == set(), f"written outside the model directory: {sorted(new)[:20]}"


def error_of(reply, *, status: int | tuple[int, ...] = 400) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert reply.code in statuses, (reply.code, reply.body[:400])
    body = reply.body.decode("utf-8", "replace")
    assert "Traceback" not in body and 'File "' not in body, body
    return reply.json()["error"]


def targz(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


async def test_hostile_model_names(tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path,
                                   tmp_path: Path, before: set[str]) -> None:
    model = (seed_dir / "model.pb").read_bytes()
    params = json.loads((seed_dir / "params.json").read_text())
    for name in BAD_NAMES:
        # the form field
        reply = await tfaas.upload(name, model, params={**params, "name": name})
        message = error_of(reply)
        assert "name" in message, (name, message)
        # the params.json name, with no form name
        reply = await tfaas.upload(None, model, params={**params, "name": name})
        assert "name" in error_of(reply), name
        # a good form name and a hostile params.json name: the form's name is the
        # model's (the stored params.json says so); the hostile one is never a path
        reply = await tfaas.upload("good", model, params={**params, "name": name})
        assert reply.code == 200, (name, reply.body)
        answer = reply.json()
        assert answer["name"] == "good" and answer["renamed_from"] == name
        stored = model_dir / "good" / str(answer["version"]) / "params.json"
        assert json.loads(stored.read_text())["name"] == "good"
        assert (await tfaas.call("DELETE", "delete/good")).code == 200
        # predictions, params, delete naming it
        reply = await tfaas.predict({"model": name, "values": [1.0]})
        error_of(reply, status=400 if name.strip() else (400, 404))
        reply = await tfaas.call("GET", "params", params={"model": name})
        error_of(reply, status=(400, 404))
        reply = await tfaas.call("DELETE", "delete",
                                 json.dumps({"model": name}).encode(),
                                 {"Content-Type": "application/json"})
        error_of(reply, status=(400, 404))
    # the URL path: encoded dots, slashes and NUL never reach the repository
    for path in ("models/%2e%2e", "models/..%2fevil", "params/%2e%2e/1", "delete/..%2F..",
                 "models/%00", "params/%EF%BC%8E%EF%BC%8E", "delete/v%D0%BA",
                 "models/vk%E2%80%AEgpj"):
        for method in ("GET", "DELETE", "POST"):
            reply = await tfaas.call(method, path, b"{}" if method == "POST" else None)
            assert reply.code in (400, 404, 405), (method, path, reply.code, reply.body[:300])
            assert b"Traceback" not in reply.body
    # the bundle's top folder
    for name in ["..x", "ｖｋ", "vk\u202e", "a b", "vк"]:
        info = member(f"{name}/params.json")
        body = targz([member(name, tarfile.DIRTYPE), info],
                     {info.name: json.dumps(params).encode()})
        reply = await tfaas.call("POST", "upload", body,
                                 {"Content-Type": "application/octet-stream"})
        assert "name" in error_of(reply), name
    assert (await tfaas.call("GET", "models")).json() == []
    assert_clean(model_dir, tmp_path, before)


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, payload in entries:
            zf.writestr(info, payload)
    return buf.getvalue()


def _zip_symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    info.create_system = 3
    return info


async def test_hostile_archives(tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path,
                                tmp_path: Path, before: set[str]) -> None:
    graph = (seed_dir / "model.pb").read_bytes()
    params = json.dumps(json.loads((seed_dir / "params.json").read_text())).encode()
    ok_files = {"vk/params.json": params, "vk/model.pb": graph}
    ok_members = [member("vk", tarfile.DIRTYPE), member("vk/params.json"), member("vk/model.pb")]
    fifo = member("vk/fifo", tarfile.FIFOTYPE)
    chardev = member("vk/null", tarfile.CHRTYPE)
    chardev.devmajor, chardev.devminor = 1, 3
    cases: list[tuple[str, bytes, str]] = [
        ("zip-slip", targz(ok_members + [member("vk/../../evil.txt")],
                           {**ok_files, "vk/../../evil.txt": b"x"}), ".."),
        ("dot-dot top", targz([member("../evil.txt")], {"../evil.txt": b"x"}), ".."),
        ("absolute", targz(ok_members + [member("/tmp/evil-abs.txt")],
                           {**ok_files, "/tmp/evil-abs.txt": b"x"}), "absolute"),
        ("symlink", targz(ok_members + [member("vk/evil-link", tarfile.SYMTYPE, "/etc/passwd")],
                          ok_files), "link"),
        ("hardlink", targz(ok_members + [member("vk/evil-hard", tarfile.LNKTYPE,
                                                "/etc/passwd")], ok_files), "link"),
        ("fifo", targz(ok_members + [fifo], ok_files), "not a regular file"),
        ("device", targz(ok_members + [chardev], ok_files), "not a regular file"),
        ("nul", targz([member("vk/ev\x00il")], {"vk/ev\x00il": b"x"}), "NUL"),
    ]
    for label, body, expected in cases:
        # as the original's bundle (the whole body) ...
        reply = await tfaas.call("POST", "upload", body,
                                 {"Content-Type": "application/octet-stream"})
        if label == "nul":  # tarfile itself refuses to write/read a NUL name
            error_of(reply)
        else:
            assert expected in error_of(reply), (label, reply.body)
        # ... and as the model part of a form
        reply = await tfaas.upload("vk", body, filename="model.tar.gz")
        error_of(reply)
    zips = [
        ("zip-slip", _zip([("../evil.txt", b"x")]), ".."),
        ("zip absolute", _zip([("/evil.txt", b"x")]), "absolute"),
        ("zip drive", _zip([("C:/evil.txt", b"x")]), "absolute"),
        ("zip backslash", _zip([("..\\evil.txt", b"x")]), ".."),
        ("zip symlink", _zip([(_zip_symlink("evil-link", "/etc"), b"/etc")]), "link"),
    ]
    for label, body, expected in zips:
        reply = await tfaas.upload("vk", body, filename="model.zip")
        assert expected in error_of(reply), (label, reply.body)
    # a frozen graph whose nodes do not exist
    bad = json.loads(params)
    bad.update(inputNode="no_such_input", outputNode="no_such_output")
    reply = await tfaas.upload("vk", graph, params=bad)
    message = error_of(reply)
    assert "no_such" in message, message
    # not a graph at all
    assert "unreadable model" in error_of(await tfaas.upload("vk", b"\x08\x96\x01garbage",
                                                             params=json.loads(params)))
    assert (await tfaas.call("GET", "models")).json() == []
    assert_clean(model_dir, tmp_path, before)
    # the real thing still works after all that
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200


@pytest.mark.parametrize("tfaas_config", [{"max_extracted_size": 1_000_000}])
async def test_decompression_bomb_is_413(tfaas: TFaaSCaller, model_dir: Path,
                                         tmp_path: Path, before: set[str]) -> None:
    zeros = b"\0" * 20_000_000
    body = targz([member("vk", tarfile.DIRTYPE), member("vk/model.pb")], {"vk/model.pb": zeros})
    assert len(body) < 100_000
    reply = await tfaas.call("POST", "upload", body, {"Content-Type": "application/octet-stream"})
    assert "expands" in error_of(reply, status=413)
    reply = await tfaas.upload("vk", body, filename="bomb.tar.gz")
    assert "expands" in error_of(reply, status=413)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.pb", zeros)
    reply = await tfaas.upload("vk", zbuf.getvalue(), filename="bomb.zip")
    assert "expands" in error_of(reply, status=413)
    assert_clean(model_dir, tmp_path, before)


def png_declaring(width: int, height: int, idat: bytes | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


async def test_image_bomb_and_bad_images(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    for data, status, words in [
        (png_declaring(100_000, 100_000), 413, "exceeds"),
        # a header the model's input takes (14x1 RGB: 42 numbers), a body that is broken
        (png_declaring(14, 1, idat=b"not zlib data"), 400, "Invalid image"),
        # one it does not take: refused from the header, the body never decoded
        (png_declaring(4, 4, idat=b"not zlib data"), 400, "does not take this image"),
        (b"GIF89a" + b"\0" * 100, 400, "Invalid image"),
        (b"\x89PNG\r\n\x1a\n" + b"\xff" * 50, 400, "Invalid image"),
    ]:
        body, ctype = encode_multipart({"model": "vk"},
                                       {"image": ("x.png", data, "image/png")})
        reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
        assert words in error_of(reply, status=status), reply.body
    # well-formed images of other formats: no other decoder even identifies them
    from PIL import Image

    for fmt in ("BMP", "GIF", "TIFF"):
        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (10, 20, 30)).save(buf, format=fmt)
        body, ctype = encode_multipart({"model": "vk"},
                                       {"image": ("x.png", buf.getvalue(), "image/png")})
        reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
        assert error_of(reply) == "Invalid image: expected png or jpg", (fmt, reply.body)


async def test_wrong_shapes_nan_inf_and_huge_arrays(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    x = json.loads((seed_dir / "input.json").read_text())["values"]
    cases = [
        ({"model": "vk", "values": [[x]]}, 400, "2-D"),
        ({"model": "vk", "values": {"a": 1}}, 400, "list"),
        ({"model": "vk", "values": [x[:-1] + [None]]}, 400, ""),
        ({"model": "vk", "values": [1e308 * 10] * 42}, 400, ""),
        ({"model": "vk", "values": [0.0] * 500_000}, 400, "expects 42 values"),
        # the numbers, plus the object's two members, are over max_request_values
        ({"model": "vk", "values": [0.0] * 1_000_000}, 413, "TFaaSApp.max_request_values"),
        ({"model": "vk", "values": x, "keys": "notalist"}, 400, "keys"),
        ({"model": "vk", "values": x, "version": "1; rm -rf"}, 400, "version"),
        ({"model": "vk", "values": x, "version": -1}, 400, "version"),
        ({"model": ["vk"], "values": x}, 400, "model"),
    ]
    for doc, status, words in cases:
        reply = await tfaas.call("POST", "json", json.dumps(doc, allow_nan=True).encode())
        assert words in error_of(reply, status=status), (doc if len(str(doc)) < 200 else "big")
    for raw in (b'{"model": "vk", "values": [NaN]}', b'{"model": "vk", "values": [Infinity]}',
                b'{"model": "vk", "values": [-Infinity]}', b"\xff\xfe", b"[" * 100_000,
                b'{"model": "vk", "values": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        error_of(await tfaas.call("POST", "json", raw))
    # protobuf of the wrong shape
    for raw in (b"\x12", b"\x12\xff\xff\xff\xff\x0f", b"\x15\x00\x00", b"\x0f", b"\x12\x03abc",
                b"\x1a\x02\xff\xfe", b"\x08" + b"\xff" * 20, b"\x12\x08" + struct.pack(
                    "<ff", float("nan"), 1.0)):
        reply = await tfaas.call("POST", "proto", raw,
                                 {"Content-Type": "application/octet-stream"})
        error_of(reply)
    # the server still answers right
    assert (await tfaas.predict({"model": "vk", "values": x})).code == 200


async def test_truncated_and_malformed_multipart(tfaas: TFaaSCaller, seed_dir: Path,
                                                 model_dir: Path, tmp_path: Path,
                                                 before: set[str]) -> None:
    body, ctype = encode_multipart(
        {"name": "vk"}, {"model": ("model.pb", (seed_dir / "model.pb").read_bytes(),
                                   "application/octet-stream")})
    for cut in (len(body) - 10, len(body) // 2, 60, 5):
        reply = await tfaas.call("POST", "upload", body[:cut], {"Content-Type": ctype})
        assert "multipart" in error_of(reply), cut
    for bad_type in ("multipart/form-data", "multipart/form-data; boundary=" + "x" * 300):
        reply = await tfaas.call("POST", "upload", body, {"Content-Type": bad_type})
        assert "boundary" in error_of(reply)
    reply = await tfaas.call("POST", "upload", body.replace(b"Content-Disposition", b"X-Nope"),
                             {"Content-Type": ctype})
    assert "Content-Disposition" in error_of(reply)
    assert_clean(model_dir, tmp_path, before)


def _raw_oversized_upload(port: int, path: str, token: str) -> tuple[bytes, float]:
    """Announce a 10 GB body, send 1 kB, and read the answer without sending the rest."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    started = time.monotonic()
    try:
        sock.sendall(
            (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
             f"Authorization: token {token}\r\n"
             "Content-Type: multipart/form-data; boundary=xyz\r\n"
             f"Content-Length: {10 * 1024**3}\r\n\r\n").encode() + b"x" * 1024
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer, time.monotonic() - started
    finally:
        sock.close()


@pytest.mark.parametrize("tfaas_config", [{"max_upload_size": 300_000}])
async def test_oversized_upload_is_refused_before_it_is_read(
    tfaas: TFaaSCaller, jp_http_port: int, jp_base_url: str, jp_serverapp, model_dir: Path
) -> None:
    await tfaas.call("GET", "models")  # the server listens
    token = jp_serverapp.identity_provider.token
    answer, seconds = await asyncio.to_thread(
        _raw_oversized_upload, jp_http_port, f"{jp_base_url}tfaas/upload", token
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert seconds < 30
    assert not list((model_dir / ".staging").glob("*"))


# -- decoders are budgeted before they allocate: the server's peak memory stays put ------

RSS_MARGIN = 100 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes: it never goes down, so it
    catches a spike however short."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _pax_bomb(path: Path, field_size: int, kind: bytes = tarfile.XHDTYPE) -> None:
    """A .tar.gz whose first member is a pax header (or another metadata record:
    ``kind``) of ``field_size`` bytes (a few hundred KB compressed): tarfile reads such
    a record whole."""
    import gzip

    header = tarfile.TarInfo("././@PaxHeader")
    header.type = kind
    header.size = field_size
    with gzip.open(path, "wb", compresslevel=6) as gz:
        gz.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        chunk = b"a" * (1 << 20)
        for _ in range(field_size // len(chunk)):
            gz.write(chunk)
        gz.write(b"\0" * 1024)


async def test_every_tar_metadata_record_is_budgeted(tfaas: TFaaSCaller,
                                                     tmp_path: Path) -> None:
    """Global pax headers and GNU long names and long link names are held whole by
    tarfile too: one of 2 MiB is a 400 naming it, as a bundle and as a form's model."""
    for kind in (tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
        path = tmp_path / f"{kind.decode()}.tar.gz"
        _pax_bomb(path, 2 << 20, kind)
        for reply in (
            await tfaas.call("POST", "upload", path.read_bytes(),
                             {"Content-Type": "application/octet-stream"}),
            await tfaas.upload("vk", path.read_bytes(), filename="model.tar.gz"),
        ):
            assert "archive has a tar metadata record of 2097152 bytes" in error_of(
                reply), (kind, reply.body[:300])


def _zip_with_members(path: Path, count: int) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(zipfile.ZipInfo(f"{i:x}"), b"")


def test_hostile_decoders_keep_the_server_memory_flat(tmp_path: Path, seed_dir: Path) -> None:
    """A pax header of 200 MB in a small .tar.gz, a zip whose central directory lists
    300000 members, a base64 model with a newline every 4 characters: each is a 400,
    and the server's peak memory stays within 100 MB of what it was before them."""
    from servers import jupyter_server

    pax = tmp_path / "pax.tar.gz"
    _pax_bomb(pax, 200 * (1 << 20))
    assert pax.stat().st_size < 2 * (1 << 20)
    many = tmp_path / "many.zip"
    _zip_with_members(many, 300_000)
    b64 = b"QUFB\n" * (4 << 20)  # 20 MB of base64 text, whitespace every 4 characters

    with jupyter_server(tmp_path / "home") as server:
        body, ctype = encode_multipart({"name": "warm"}, {
            "model": ("model.pb", (seed_dir / "model.pb").read_bytes(), "application/octet-stream"),
            "params": ("params.json", json.dumps(
                {**json.loads((seed_dir / "params.json").read_text()), "name": "warm"}
            ).encode(), "application/json"),
        })
        code, answer = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200, answer
        baseline = peak_rss(server.pid)
        cases = [
            ("pax", pax.read_bytes(), "model.tar.gz", {}, "tar metadata record"),
            ("zip", many.read_bytes(), "model.zip", {}, "more than 10000 members"),
            ("b64", b64, "model.pb", {"Content-Encoding": "base64"}, "unreadable model"),
        ]
        for name, data, filename, headers, message in cases:
            body, ctype = encode_multipart({"name": name}, {
                "model": (filename, data, "application/octet-stream")})
            code, answer = server.request("POST", "tfaas/upload", body,
                                          {"Content-Type": ctype, **headers})
            assert code == 400 and message in json.loads(answer)["error"], (name, answer[:300])
            grown = peak_rss(server.pid) - baseline
            assert grown < RSS_MARGIN, f"{name}: peak memory grew by {grown >> 20} MB"
        assert server.call("GET", "tfaas/models")[0]["name"] == "warm"


def reset_peak_rss(pid: int) -> bool:
    """Reset the process's peak resident memory to its current one (Linux's clear_refs
    5), so that the next input is measured alone; False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _hostile_predictions(v2_input: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """Prediction bodies of 16-20 MB that would each make the server build millions
    of Python objects (or protobuf fields): (what, path, body, headers)."""
    zeros = b",".join([b"0"] * 10_000_000)
    packed = np.zeros(5_000_000, dtype="<f4").tobytes()
    one_byte_elements = (struct.pack("<I", 1) + b"x") * 4_000_000
    v2_bytes_header = json.dumps({"inputs": [{
        "name": v2_input, "shape": [1, 4_000_000], "datatype": "BYTES",
        "parameters": {"binary_data_size": len(one_byte_elements)}}]}).encode()
    return [
        ("json values", "tfaas/json", b'{"model": "vk", "values": [' + zeros + b"]}", {}),
        ("json rows", "tfaas/json",
         b'{"model": "vk", "values": [' + b",".join([b"[0]"] * 4_000_000) + b"]}", {}),
        ("v2 json", "tfaas/v2/models/vk/infer",
         b'{"inputs": [{"name": "%s", "shape": [1, 10000000], "datatype": "FP32", '
         b'"data": [%s]}]}' % (v2_input.encode(), zeros), {}),
        ("v2 bytes", "tfaas/v2/models/vk/infer", v2_bytes_header + one_byte_elements,
         {"Inference-Header-Content-Length": str(len(v2_bytes_header))}),
        ("tf serving", "tfaas/v1/models/vk:predict",
         b'{"instances": [[' + zeros + b"]]}", {}),
        ("proto values", "tfaas/proto",
         b"\x1a\x02vk\x12" + _varint(len(packed)) + packed, {}),
        ("proto keys", "tfaas/proto", b"\x1a\x02vk" + b"\x0a\x00" * 10_000_000, {}),
        ("proto unpacked", "tfaas/proto", b"\x1a\x02vk" + b"\x15\0\0\0\0" * 4_000_000, {}),
    ]


def test_hostile_prediction_bodies_keep_the_server_memory_flat(
    tmp_path: Path, seed_dir: Path
) -> None:
    """Each hostile prediction body is a 413 naming TFaaSApp.max_request_values, and
    the server's peak memory stays within 100 MB of what it was before them; bulk
    scoring (10,000 rows of 42 values through /json, V2 JSON and TF Serving) still
    answers what the model's numpy forward pass gives."""
    from helpers import seed_predict, seed_upload_body
    from servers import jupyter_server

    rows = np.random.default_rng(7).random((10_000, 42)).round(4)
    expected = np.asarray(seed_predict(rows.tolist()))
    with jupyter_server(tmp_path / "home") as server:
        body, ctype = seed_upload_body(seed_dir)
        code, answer = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        assert code == 200, answer
        v2_input = server.call("GET", "tfaas/v2/models/vk")["inputs"][0]["name"]
        bulk = {
            "tfaas/json": {"model": "vk", "values": rows.tolist()},
            "tfaas/v2/models/vk/infer": {"inputs": [{
                "name": v2_input, "shape": [10_000, 42], "datatype": "FP32",
                "data": rows.reshape(-1).tolist()}]},
            "tfaas/v1/models/vk:predict": {"instances": rows.tolist()},
        }
        for path, doc in bulk.items():
            code, answer = server.json("POST", path, doc)
            assert code == 200, (path, answer)
            got = {"tfaas/json": lambda a: a,
                   "tfaas/v2/models/vk/infer": lambda a: a["outputs"][0]["data"],
                   "tfaas/v1/models/vk:predict": lambda a: a["predictions"]}[path](answer)
            np.testing.assert_allclose(np.asarray(got).reshape(expected.shape), expected,
                                       rtol=1e-5, atol=1e-6, err_msg=path)
        baseline = peak_rss(server.pid)
        for what, path, body, headers in _hostile_predictions(v2_input):
            assert len(body) <= 20 * (1 << 20) + 1000, what
            if reset_peak_rss(server.pid):  # each input alone, from the memory it finds
                baseline = peak_rss(server.pid)
            code, answer = server.request("POST", path, body, headers)
            assert code == 413, (what, code, answer[:300])
            assert "TFaaSApp.max_request_values" in json.loads(answer)["error"], (what, answer)
            grown = peak_rss(server.pid) - baseline
            assert grown < RSS_MARGIN, f"{what}: peak memory grew by {grown >> 20} MB"
        code, answer = server.json("POST", "tfaas/json", bulk["tfaas/json"])
        assert code == 200 and len(answer) == 10_000


async def test_multipart_part_count_is_bounded(tfaas: TFaaSCaller) -> None:
    from tfaas_jupyter.server.multipart import MAX_PARTS

    fields = {f"f{i}": "x" for i in range(MAX_PARTS + 1)}
    model = {"model": ("model.pb", b"x", "application/octet-stream")}
    body, ctype = encode_multipart(fields, model)
    reply = await tfaas.call("POST", "upload", body, {"Content-Type": ctype})
    assert reply.code == 400 and f"more than {MAX_PARTS} parts" in reply.json()["error"]


async def test_multipart_field_and_header_sizes_are_bounded(tfaas: TFaaSCaller) -> None:
    """A text field is held in memory, so it is refused over 1 MiB; part headers over
    16 KiB too. Each is a 400 naming the problem (file parts go to disk)."""
    model = {"model": ("model.pb", b"x", "application/octet-stream")}
    body, ctype = encode_multipart({"name": "a" * ((1 << 20) + 1)}, model)
    reply = await tfaas.call("POST", "upload", body, {"Content-Type": ctype})
    assert error_of(reply) == "form field 'name' is too large", reply.body[:300]
    body, ctype = encode_multipart({"name": "vk"}, {
        "model": ("m" * (17 * 1024) + ".pb", b"x", "application/octet-stream")})
    reply = await tfaas.call("POST", "upload", body, {"Content-Type": ctype})
    assert error_of(reply) == "multipart part headers are too long", reply.body[:300]


async def test_a_client_leaving_during_validation_never_guts_the_commit(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path, jp_http_port: int, jp_base_url: str,
    jp_serverapp,
) -> None:
    """The whole body is sent, then the connection closed while the worker validates the
    model: the upload still commits whole, and its staging folder goes afterwards."""
    from helpers import seed_upload_body

    body, ctype = seed_upload_body(seed_dir)
    token = jp_serverapp.identity_provider.token
    head = (f"POST {jp_base_url}tfaas/upload HTTP/1.1\r\nHost: localhost:{jp_http_port}\r\n"
            f"Authorization: token {token}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(head + body)
    await writer.drain()
    writer.close()  # gone before the answer
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        reply = await tfaas.call("GET", "models")
        if reply.code == 200 and reply.json():
            break
        await asyncio.sleep(0.2)
    assert [m["versions"] for m in reply.json()] == [[1]], reply.body
    version = model_dir / "vk" / "1"
    assert sorted(p.name for p in version.iterdir()) == [
        "labels.txt", "model.pb", "params.json", "tfaas.json"]
    doc = json.loads((seed_dir / "input.json").read_text())
    assert (await tfaas.predict(doc)).code == 200
    deadline = time.monotonic() + 60
    while list((model_dir / ".staging").iterdir()) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert list((model_dir / ".staging").iterdir()) == []


async def test_staging_and_trash_are_removed_off_the_event_loop(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path, jp_http_port: int, jp_base_url: str,
    jp_serverapp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server runs in this test's event loop: every rmtree of a staging or trash
    folder (a committed upload, a refused one, a body the client abandoned half sent, a
    delete) happens in another thread, so a big folder never stalls the server."""
    import shutil
    import threading

    from tfaas_jupyter.server import repository

    loop_thread = threading.get_ident()
    removals: list[tuple[str, bool]] = []
    real_rmtree = shutil.rmtree

    def recording_rmtree(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path).parent in (model_dir / ".staging", model_dir / ".trash"):
            removals.append((Path(path).parent.name, threading.get_ident() == loop_thread))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(repository.shutil, "rmtree", recording_rmtree)
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    assert (await tfaas.upload("bad", b"\x08\x96\x01garbage")).code == 400
    token = jp_serverapp.identity_provider.token
    head = (f"POST {jp_base_url}tfaas/upload HTTP/1.1\r\nHost: localhost:{jp_http_port}\r\n"
            f"Authorization: token {token}\r\nContent-Type: application/gzip\r\n"
            f"Content-Length: 100000\r\n\r\n").encode()
    _reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(head + b"\0" * 1000)  # a tenth of the body, then gone
    await writer.drain()
    writer.close()
    deadline = time.monotonic() + 60
    while len(removals) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert (await tfaas.call("DELETE", "delete/vk")).code == 200
    deadline = time.monotonic() + 60
    while len(removals) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert sorted(removals) == [(".staging", False)] * 3 + [(".trash", False)], removals
    assert list((model_dir / ".staging").iterdir()) == []
