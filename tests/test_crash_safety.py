"""Crash safety: a SIGKILLed server (mid-upload) or repository process (mid-delete,
mid-commit) never loses a model; a restart cleans the leftovers and serves every model
as before; the model worker never outlives a killed server."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from servers import ServerProcess, jupyter_server

from tfaas_jupyter.client.forms import encode_multipart

pytestmark = pytest.mark.timeout(900)


def seed_form(seed_dir: Path, name: str) -> tuple[bytes, str]:
    params = json.loads((seed_dir / "params.json").read_text())
    params["name"] = name
    return encode_multipart(
        {"name": name},
        {
            "model": ("model.pb", (seed_dir / "model.pb").read_bytes(),
                      "application/octet-stream"),
            "params": ("params.json", json.dumps(params).encode(), "application/json"),
            "labels": ("labels.txt", (seed_dir / "labels.txt").read_bytes(), "text/plain"),
        },
    )


def upload(server: ServerProcess, seed_dir: Path, name: str) -> dict[str, Any]:
    body, ctype = seed_form(seed_dir, name)
    code, raw = server.request("POST", "tfaas/upload", body, {"Content-Type": ctype},
                               timeout=240)
    assert code == 200, raw
    return json.loads(raw)


def predictions(server: ServerProcess, seed_dir: Path, models: dict[str, list[int]]
                ) -> dict[str, Any]:
    """Every (model, version) -> its answer to the talk's input."""
    values = json.loads((seed_dir / "input.json").read_text())["values"]
    answers = {}
    for name, versions in sorted(models.items()):
        for version in versions:
            code, doc = server.json(
                "POST", "tfaas/json", {"model": name, "version": version, "values": values}
            )
            assert code == 200, (name, version, doc)
            answers[f"{name}/{version}"] = doc
    return answers


def listing(server: ServerProcess) -> dict[str, list[int]]:
    code, doc = server.json("GET", "tfaas/models")
    assert code == 200, doc
    return {m["name"]: m["versions"] for m in doc}


def leftovers(model_dir: Path) -> list[str]:
    found = []
    for special in (".staging", ".trash"):
        folder = model_dir / special
        if folder.is_dir():
            found += [f"{special}/{p.name}" for p in folder.iterdir()]
    return found


def pid_gone(pid: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.2)
    return False


def test_sigkill_mid_upload_loses_nothing(tmp_path: Path, seed_dir: Path) -> None:
    model_dir = tmp_path / "models"
    with jupyter_server(tmp_path / "a", model_dir=model_dir, timeout=240) as server:
        upload(server, seed_dir, "vk")
        upload(server, seed_dir, "vk")
        upload(server, seed_dir, "other")
        before = listing(server)
        assert before == {"vk": [1, 2], "other": [1]}
        answers = predictions(server, seed_dir, before)
        worker = server.worker_pid()
        assert worker, "the model worker should be running after predictions"

        # A slow client: headers announcing 64 MiB, then only 2 MiB of the body.
        body, ctype = seed_form(seed_dir, "vk")
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        try:
            sock.sendall(
                (f"POST {server.base_url}tfaas/upload HTTP/1.1\r\n"
                 f"Host: 127.0.0.1:{server.port}\r\n"
                 f"Authorization: token {server.token}\r\n"
                 f"Content-Type: {ctype}\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n"
                 ).encode()
                + body[:1024] + b"\0" * (2 * 1024 * 1024)
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the upload is being written to staging
                staged = list((model_dir / ".staging").glob("*/part*"))  # the model part
                if staged and staged[0].stat().st_size > 1024 * 1024:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the slow upload never reached the staging area")
            os.kill(server.pid, signal.SIGKILL)
            server.proc.wait(timeout=30)
        finally:
            sock.close()
        assert pid_gone(worker), f"model worker {worker} outlived the SIGKILLed server"
        assert leftovers(model_dir), "the interrupted upload should have left a staging folder"

    with jupyter_server(tmp_path / "b", model_dir=model_dir, timeout=240) as server:
        assert leftovers(model_dir) == []
        assert listing(server) == before
        assert predictions(server, seed_dir, before) == answers
        # and the repository still takes new versions, numbered after the old ones
        assert upload(server, seed_dir, "vk")["version"] == 3


_KILLED_REPO = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    from pathlib import Path
    from tfaas_jupyter.server import repository

    root, action = sys.argv[1], sys.argv[2]
    repo = repository.Repository(root)

    def hang(*args, **kwargs):
        print("reached", flush=True)
        time.sleep(600)

    if action.startswith("delete"):
        shutil.rmtree = hang  # after the rename into .trash, before the removal
        _, name, version = (action + ":").split(":")[:3]
        repo.delete(name, int(version) if version else None)
    elif action.startswith("commit"):
        staging = repo.new_staging_dir()
        seed = Path(sys.argv[3])
        for f in ("model.pb", "params.json", "labels.txt"):
            shutil.copy(seed / f, staging / f)
        os.rename = hang  # everything staged and synced, not yet renamed into place
        repo.commit("vk", staging, {"format": "graphdef", "model": "model.pb",
                                    "labels": "labels.txt"})
    print("finished", flush=True)
    """
)


def kill_repository_midway(model_dir: Path, action: str, *extra: str) -> None:
    """Run a Repository operation in a process and SIGKILL it at its critical point."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_REPO, str(model_dir), action, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else b""
        assert line.strip() == b"reached", (line, proc.stderr.read() if proc.poll() else "")
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == -signal.SIGKILL


def test_killed_delete_and_commit_leave_a_consistent_repository(
    tmp_path: Path, seed_dir: Path
) -> None:
    model_dir = tmp_path / "models"
    with jupyter_server(tmp_path / "a", model_dir=model_dir, timeout=240) as server:
        for name in ("vk", "vk", "doomed", "keep"):
            upload(server, seed_dir, name)
        before = listing(server)
        assert before == {"vk": [1, 2], "doomed": [1], "keep": [1]}
        answers = predictions(server, seed_dir, before)

    # Killed between the rename into .trash and the removal: the delete happened.
    # Killed with a version fully staged but not yet renamed into place: no new version.
    # (Each process's Repository() cleans what the previous one left, so check each.)
    for action in ("delete:doomed", "delete:vk:1", "commit"):
        kill_repository_midway(model_dir, action, str(seed_dir))
        assert len(leftovers(model_dir)) == 1, (action, leftovers(model_dir))

    with jupyter_server(tmp_path / "b", model_dir=model_dir, timeout=240) as server:
        assert leftovers(model_dir) == []
        after = listing(server)
        assert after == {"vk": [2], "keep": [1]}
        expected = {k: v for k, v in answers.items() if k in ("vk/2", "keep/1")}
        assert predictions(server, seed_dir, after) == expected
        code, doc = server.json("POST", "tfaas/json", {"model": "doomed", "values": [1.0]})
        assert code == 404, doc
        code, doc = server.json("GET", "tfaas/params/vk/1")
        assert code == 404, doc
        # version numbers are never reused: the killed commit had taken 3 (its mark is
        # written before the rename), so the next is 4
        assert upload(server, seed_dir, "vk")["version"] == 4
