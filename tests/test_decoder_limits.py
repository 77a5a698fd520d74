"""Every decoder checks the size of what it would produce before producing it: an
image against the model's input and ``max_image_pixels`` (from its header), a
``.keras`` file and a SavedModel zip against ``max_extracted_size`` (from the zip's
directory). Measured on a real server and its worker, from /proc: their memory stays
within 100 MB of what it was, one request or four at once, and comes back after."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from servers import ServerProcess, jupyter_server
from test_crash_safety import upload

from tfaas_jupyter.client.forms import encode_multipart

MB = 1 << 20
#: The server's max_extracted_size here; the bombs expand to four times as much.
LIMIT = 64 * MB
BOMB = 4 * LIMIT
#: How far above its baseline a process may go while refusing a bomb.
MARGIN = 100 * MB


def rss(pid: int) -> int:
    """The resident memory of process ``pid`` in bytes, as the kernel counts it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process ``pid`` has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def peak_rss(pids: list[int]) -> Iterator[dict[int, int]]:
    """The highest resident memory of each process while the block runs (sampled
    every 10 ms)."""
    peaks = {pid: rss(pid) for pid in pids}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in pids:
                peaks[pid] = max(peaks[pid], rss(pid))
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peaks
    finally:
        done.set()
        sampler.join()


def png(width: int, height: int, compressed_rows: bytes) -> bytes:
    """A png of ``width`` x ``height`` RGB pixels around its compressed scanlines."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", compressed_rows)
            + chunk(b"IEND", b""))


def zero_png(side: int) -> bytes:
    """An all-black RGB png of ``side`` x ``side`` pixels (about 116 KB for 6300)."""
    pack = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * side)
    return png(side, side, b"".join(pack.compress(row) for _ in range(side)) + pack.flush())


def with_padding(source: Path | None, target: Path, *, arc_root: str = "",
                 folder: Path | None = None) -> Path:
    """A zip of ``source`` (a file's members) or ``folder`` (under ``arc_root``) plus a
    member of :data:`BOMB` zero bytes: a few hundred KB that expand to 256 MB."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        if source is not None:
            with zipfile.ZipFile(source) as original:
                for info in original.infolist():
                    out.writestr(info, original.read(info))
        if folder is not None:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    out.write(path, f"{arc_root}/{path.relative_to(folder)}")
        with out.open(f"{arc_root}/padding.bin" if arc_root else "padding.bin", "w",
                      force_zip64=True) as pad:
            block = b"\0" * MB
            for _ in range(BOMB // MB):
                pad.write(block)
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, seed_dir: Path) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("decoders")
    with jupyter_server(home, args=[f"--TFaaSApp.max_extracted_size={LIMIT}"]) as srv:
        upload(srv, seed_dir, "vk")  # 42 numbers in, no image
        values = json.loads((seed_dir / "input.json").read_text())["values"]
        assert srv.json("POST", "tfaas/json", {"model": "vk", "values": values})[0] == 200
        yield srv


def _processes(server: ServerProcess) -> list[int]:
    worker = server.worker_pid()
    assert worker is not None, "the worker runs: vk answered"
    return [server.pid, worker]


def _refused_within_budget(server: ServerProcess, send: Any, expected: int, words: list[str]
                           ) -> None:
    """``send()`` once, then four at once: each answers ``expected`` naming ``words``;
    the server and its worker stay within :data:`MARGIN` of their memory before, and
    come back to it after."""
    pids = _processes(server)
    before = {pid: rss(pid) for pid in pids}
    for concurrency in (1, 4):
        with peak_rss(pids) as peaks, ThreadPoolExecutor(concurrency) as pool:
            answers = list(pool.map(lambda _: send(), range(concurrency)))
        for code, body in answers:
            error = json.loads(body)["error"]
            assert code == expected and all(w in error for w in words), (code, error)
        for pid in pids:
            grown = peaks[pid] - before[pid]
            assert grown < MARGIN, (concurrency, pid, f"grew {grown / MB:.0f} MB")
    time.sleep(1)
    for pid in pids:
        assert rss(pid) - before[pid] < MARGIN // 2, (pid, rss(pid) / MB, before[pid] / MB)
    assert not list((server.home / "models" / ".staging").glob("*/*")), "nothing staged"


def test_image_bomb_for_a_model_of_numbers_is_refused_from_its_header(
    server: ServerProcess
) -> None:
    png = zero_png(6300)  # 39.7 million pixels: under max_image_pixels
    assert len(png) < 200_000
    body, ctype = encode_multipart({"model": "vk"}, {"image": ("zero.png", png, "image/png")})

    def send() -> tuple[int, bytes]:
        return server.request("POST", "tfaas/image", body, {"Content-Type": ctype})

    _refused_within_budget(server, send, 400, ["vk", "6300x6300", "[None, 42]"])


def test_inflated_keras_file_is_refused_before_the_worker_opens_it(
    server: ServerProcess, built: dict[str, Any], tmp_path: Path
) -> None:
    bomb = with_padding(built["keras_file"].path, tmp_path / "bomb.keras")
    assert bomb.stat().st_size < 2 * MB
    body, ctype = encode_multipart({"name": "kbomb"}, {
        "model": ("bomb.keras", bomb.read_bytes(), "application/octet-stream")})

    def send() -> tuple[int, bytes]:
        return server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})

    _refused_within_budget(server, send, 413, ["max_extracted_size", str(LIMIT)])
    assert server.json("GET", "tfaas/models/kbomb")[0] == 404


def test_savedmodel_zip_bomb_is_refused_before_it_is_inflated(
    server: ServerProcess, built: dict[str, Any], tmp_path: Path
) -> None:
    bomb = with_padding(None, tmp_path / "bomb.zip", arc_root="sm",
                        folder=built["module"].path)
    body, ctype = encode_multipart({"name": "zbomb"}, {
        "model": ("bomb.zip", bomb.read_bytes(), "application/zip")})

    def send() -> tuple[int, bytes]:
        return server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})

    cpu = cpu_seconds(server.pid)
    _refused_within_budget(server, send, 413, ["max_extracted_size", str(LIMIT)])
    # five refusals read the zip's directory; inflating 64 MB each would take seconds
    spent = cpu_seconds(server.pid) - cpu
    assert spent < 1.0, f"the server spent {spent:.2f} s of CPU"
    assert server.json("GET", "tfaas/models/zbomb")[0] == 404
