"""A full disk under the model repository, on a real filesystem: a 20 MB tmpfs mounted
by the test as the model folder of a real server. Whether the disk fills while the
body arrives, while its parts are unpacked, at the commit or at a label change, the
answer is a 507 naming the space needed and the space free, nothing is left behind
(no staging folder, no ``*.tmp``), and the next upload that fits succeeds; a restart
removes any leftover."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from servers import ServerProcess, jupyter_server
from test_crash_safety import seed_form, upload

from tfaas_jupyter.client.forms import encode_multipart

MB = 1 << 20
SIZE = 20 * MB


@dataclass
class SmallDisk:
    """A small tmpfs: the server sees it at ``path`` once started with ``prefix`` and
    ``args``; this test reads and fills it at ``view``."""

    path: Path
    view: Path
    prefix: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)


def _mount_options() -> str:
    return f"size={SIZE},mode=0700,uid={os.getuid()},gid={os.getgid()}"


@contextmanager
def _mounted_here(mount: Path, sudo: list[str]) -> Iterator[SmallDisk]:
    """A tmpfs mounted in this mount namespace (as root, or through ``sudo -n``)."""
    done = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", _mount_options(), "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"{' '.join([*sudo, 'mount'])}: {done.stderr.strip()}")
    try:
        yield SmallDisk(mount, mount)
    finally:
        subprocess.run([*sudo, "umount", "-l", str(mount)], check=False)


@contextmanager
def _mounted_in_a_namespace(mount: Path) -> Iterator[SmallDisk]:
    """A tmpfs mounted in a new user and mount namespace, which needs no privilege: a
    process holds the namespace open; servers enter it with ``nsenter`` (as its root,
    which is this user outside); this test reaches the disk through the holder's
    ``/proc/PID/root``. The tmpfs goes with the namespace's last process."""
    holder = subprocess.Popen(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         'mount -t tmpfs -o "$1" tmpfs "$2" && echo mounted && exec sleep 100000',
         "sh", f"size={SIZE},mode=0700", str(mount)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stderr is not None
        if holder.stdout.readline().strip() != "mounted":
            raise OSError(f"unshare: {holder.stderr.read().strip()}")
        yield SmallDisk(
            mount, Path(f"/proc/{holder.pid}/root") / mount.relative_to("/"),
            prefix=["nsenter", f"--target={holder.pid}", "--user", "--mount",
                    "--preserve-credentials"],
            args=["--allow-root"])
    finally:
        holder.kill()
        holder.wait()
        for pipe in (holder.stdout, holder.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 20 MB tmpfs (mode 0700, as a model folder must be), removed afterwards. Made
    the first way this user can: mounted as root; in a user namespace (no privilege
    needed where the kernel allows them); mounted through ``sudo -n``. None of them
    possible is a failure, not a skip: the test must run wherever the suite does."""
    mount = tmp_path / "disk"
    mount.mkdir()
    ways: list[Callable[[], Any]] = []
    if os.geteuid() == 0:
        ways.append(lambda: _mounted_here(mount, []))
    ways.append(lambda: _mounted_in_a_namespace(mount))
    if os.geteuid() != 0 and shutil.which("sudo"):
        ways.append(lambda: _mounted_here(mount, ["sudo", "-n"]))
    refusals = []
    with ExitStack() as stack:
        for way in ways:
            try:
                disk = stack.enter_context(way())
            except OSError as refused:
                refusals.append(str(refused))
                continue
            yield disk
            return
    pytest.fail("cannot mount a small tmpfs: " + "; ".join(refusals))


def leftovers(repo: Path) -> list[str]:
    """What an interrupted or failed write left: staging folders and temporary files."""
    staged = [str(p) for p in (repo / ".staging").glob("*")] if (repo / ".staging").is_dir() else []
    return staged + [str(p) for p in repo.rglob("*.tmp")]


def free_bytes(path: Path) -> int:
    fs = os.statvfs(path)
    return fs.f_bavail * fs.f_frsize


def check_507(code: int, raw: bytes, repo: Path, action: str, needed_at_least: int) -> None:
    """A 507 naming ``action``, the space needed (at least ``needed_at_least``) and the
    free space, which is the disk's own figure now that the upload's files are gone."""
    assert code == 507, (code, raw[:500])
    error = json.loads(raw)["error"]
    found = re.search(r"needs (?:more than )?(\d+) bytes .*has (\d+) bytes .*free", error)
    assert action in error and found, error
    needed, free = int(found.group(1)), int(found.group(2))
    assert needed >= needed_at_least, (needed, needed_at_least, error)
    assert abs(free - free_bytes(repo)) <= 64 * 1024, (free, free_bytes(repo), error)
    assert leftovers(repo) == [], leftovers(repo)


def fill(repo: Path) -> Path:
    """A file that takes every free byte of the disk. Written unbuffered: a buffered
    file would fail again at its close, flushing what the full disk refused."""
    filler = repo / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        for size in (MB, 64 * 1024, 4096, 1):  # the last pages too
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    assert free_bytes(repo) == 0
    return filler


def body_of_size(size: int) -> tuple[bytes, str]:
    """An upload form whose model part is ``size`` bytes."""
    return encode_multipart({"name": "big"}, {
        "model": ("model.pb", os.urandom(size), "application/octet-stream")})


def unpacking_bomb(size: int) -> bytes:
    """A .tar.gz of a few KB holding a SavedModel-like folder of ``size`` bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("sm/variables/variables.data-00000-of-00001")
        info.size = size
        tar.addfile(info, io.BytesIO(b"\0" * size))
        pb = tarfile.TarInfo("sm/saved_model.pb")
        pb.size = 4
        tar.addfile(pb, io.BytesIO(b"\0" * 4))
    return out.getvalue()


def the_next_upload_fits(server: ServerProcess, seed_dir: Path, name: str) -> None:
    answer = upload(server, seed_dir, name)
    values = json.loads((seed_dir / "input.json").read_text())["values"]
    code, doc = server.json("POST", "tfaas/json", {"model": name, "values": values})
    assert code == 200, doc
    assert answer["name"] == name


def test_full_disk_is_a_507_that_leaves_nothing(
    small_disk: SmallDisk, tmp_path: Path, seed_dir: Path, built: dict
) -> None:
    repo = small_disk.view
    with jupyter_server(tmp_path / "home", model_dir=small_disk.path,
                        prefix=small_disk.prefix, args=small_disk.args) as server:
        upload(server, seed_dir, "vk")
        # 1. while the body arrives: 30 MB on a 20 MB disk
        body, ctype = body_of_size(30 * MB)
        code, raw = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        check_507(code, raw, repo, "store the upload", len(body))
        the_next_upload_fits(server, seed_dir, "after-body")
        # the same as a bundle body (no form)
        code, raw = server.request("POST", "tfaas/upload", os.urandom(30 * MB),
                                   {"Content-Type": "application/octet-stream"})
        check_507(code, raw, repo, "store the upload", 30 * MB)

        # 2. while the parts are unpacked: a small archive expanding beyond the disk
        bomb = unpacking_bomb(30 * MB)
        body, ctype = encode_multipart({"name": "unpacked"}, {
            "model": ("sm.tar.gz", bomb, "application/gzip")})
        code, raw = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype})
        check_507(code, raw, repo, "unpack the upload", free_bytes(repo) // 2)
        the_next_upload_fits(server, seed_dir, "after-unpack")

        # 3. at the commit: the disk fills while the worker validates the model
        body, ctype = seed_form(seed_dir, "committed")
        answer: dict = {}

        def send() -> None:
            answer["reply"] = server.request("POST", "tfaas/upload", body,
                                             {"Content-Type": ctype})

        worker = server.worker_pid()
        assert worker is not None
        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 60
        while not list((repo / ".staging").glob("*/params.json")):
            assert time.monotonic() < deadline and sender.is_alive(), answer
            time.sleep(0.002)
        os.kill(worker, signal.SIGSTOP)  # the model not validated before the disk is full
        try:
            filler = fill(repo)
        finally:
            os.kill(worker, signal.SIGCONT)
        sender.join()
        code, raw = answer["reply"]
        check_507(code, raw, repo, "store model 'committed'", 1)
        filler.unlink()
        assert server.json("GET", "tfaas/models/committed")[0] == 404

        # 4. a label change on a full disk
        filler = fill(repo)
        code, raw = server.request("PUT", "tfaas/models/vk/labels/stable",
                                   b'{"version": 1}', {"Content-Type": "application/json"})
        check_507(code, raw, repo, "label model 'vk'", 1)
        filler.unlink()
        the_next_upload_fits(server, seed_dir, "after-commit")
        code, doc = server.json("PUT", "tfaas/models/vk/labels/stable", {"version": 1})
        assert code == 200, doc

    # start-up removes leftovers of any kind (a crash's, an earlier release's)
    dead = 4_000_000
    planted = [
        repo / ".staging" / f"{dead}-{uuid.uuid4().hex}" / "part1-model",
        repo / ".staging" / "not-tagged",
        repo / "vk" / "labels.json.tmp",
        repo / "vk" / f"labels.json.{dead}-{uuid.uuid4().hex}.tmp",
        repo / "vk" / "1" / f"tfaas.json.{dead}-{uuid.uuid4().hex}.tmp",
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    with jupyter_server(tmp_path / "home2", model_dir=small_disk.path,
                        prefix=small_disk.prefix, args=small_disk.args) as server:
        assert leftovers(repo) == [], leftovers(repo)
        the_next_upload_fits(server, seed_dir, "after-restart")
        assert server.json("GET", "tfaas/models/vk")[0] == 200
