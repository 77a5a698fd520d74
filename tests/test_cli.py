"""The ``tfaas`` command, run as a subprocess against the live test server with the
original tfaas_client.py's flags (and ours)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import tfmodels

pytestmark = pytest.mark.timeout(600)


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def tfaas_cli(jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp):
    """Run ``tfaas ARGS`` (the console script when installed) with the server's URL."""
    url = f"http://localhost:{jp_http_port}{jp_base_url}tfaas"
    token = jp_serverapp.identity_provider.token
    script = shutil.which("tfaas", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "tfaas_jupyter.client.cli"]

    async def run(*args: str, url_arg: bool = True, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> Run:
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("TFAAS_TOKEN", "JUPYTER_TOKEN", "JPY_API_TOKEN",
                                "JUPYTERHUB_API_TOKEN", "TFAAS_URL")}
        environ["TFAAS_TOKEN"] = token
        environ.update(env or {})
        argv = [*command, *([f"--url={url}"] if url_arg else []), *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=environ, cwd=str(cwd) if cwd else None,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=400)
        return Run(proc.returncode or 0, out.decode(), err.decode())

    run.url = url  # type: ignore[attr-defined]
    run.token = token  # type: ignore[attr-defined]
    return run


async def test_original_flags_workflow(tfaas_cli, seed_dir: Path) -> None:
    r = await tfaas_cli(f"--upload={seed_dir / 'upload.json'}")
    assert r.code == 0, r.err
    assert r.json()["name"] == "vk" and "Traceback" not in r.err

    r = await tfaas_cli("--models", "--json")
    assert r.code == 0, r.err
    assert [m["name"] for m in r.json()] == ["vk"]

    # --predict prints the bare list on one line, as the original
    r = await tfaas_cli(f"--predict={seed_dir / 'input.json'}")
    assert r.code == 0, r.err
    lines = r.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[") and lines[0].endswith("]")
    (p,) = json.loads(lines[0])
    assert 0.6 < p < 0.8

    # --model overrides input.json's model: an unknown one is a clean 404
    r = await tfaas_cli(f"--predict={seed_dir / 'input.json'}", "--model=nope")
    assert r.code == 1 and "Traceback" not in r.err
    assert "nope" in r.err and "404" in r.err

    r = await tfaas_cli("--params=vk")
    assert r.code == 0 and r.json()["inputNode"] == "dense_1_input"
    r = await tfaas_cli("--status", "--json")
    assert r.code == 0 and "vk" in r.json()["models_on_disk"]

    r = await tfaas_cli("--delete=vk")
    assert r.code == 0, r.err
    r = await tfaas_cli("--models", "--json")
    assert r.json() == []


async def test_upload_json_moved_folder_and_versions(tfaas_cli, seed_dir: Path,
                                                     tmp_path: Path) -> None:
    # upload.json's absolute paths point elsewhere: files beside it are used
    moved = tmp_path / "moved"
    shutil.copytree(seed_dir, moved)
    spec = json.loads((moved / "upload.json").read_text())
    spec = {k: (f"/nowhere/{Path(v).name}" if k != "name" else v) for k, v in spec.items()}
    (moved / "upload.json").write_text(json.dumps(spec))
    for expected in (1, 2):
        r = await tfaas_cli("--upload=upload.json", cwd=moved)
        assert r.code == 0, r.err
        assert r.json()["version"] == expected
    r = await tfaas_cli(f"--predict={moved / 'input.json'}", "--version=1", "--json")
    assert r.code == 0 and len(r.json()) == 1
    r = await tfaas_cli("--delete=vk", "--version=2", "--json")
    assert r.json()["deleted_versions"] == [2]
    r = await tfaas_cli("--params=vk", "--version=2")
    assert r.code == 1 and "404" in r.err


async def test_bundle_and_image(tfaas_cli, tmp_path: Path) -> None:
    built = tfmodels.make_keras_export(tmp_path / "k")
    folder = tmp_path / "bundled"
    shutil.copytree(built.path, folder)
    (folder / "labels.txt").write_text("a\nb\n")
    bundle = tmp_path / "bundled.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(folder, arcname="bundled")
    r = await tfaas_cli(f"--bundle={bundle}", "--json")
    assert r.code == 0, r.err
    assert r.json()["name"] == "bundled" and r.json()["format"] == "savedmodel"

    # an image to a model with a 6-value input cannot work: a clear 400, no traceback
    from PIL import Image

    png = tmp_path / "x.png"
    Image.new("RGB", (2, 3), (10, 20, 30)).save(png)
    r = await tfaas_cli(f"--image={png}", "--model=bundled")
    assert r.code == 1 and "400" in r.err and "Traceback" not in r.err
    r = await tfaas_cli(f"--image={png}")
    assert r.code == 1 and "--model" in r.err


async def test_failures_are_one_line_and_nonzero(tfaas_cli, tmp_path: Path) -> None:
    r = await tfaas_cli("--models", env={"TFAAS_TOKEN": "wrong"})
    assert r.code == 1 and "403" in r.err
    # the token from JUPYTER_TOKEN when TFAAS_TOKEN is unset
    r = await tfaas_cli("--models", env={"TFAAS_TOKEN": "", "JUPYTER_TOKEN": tfaas_cli.token})
    assert r.code == 0, r.err
    r = await tfaas_cli("--models", "--token", tfaas_cli.token, env={"TFAAS_TOKEN": "wrong"})
    assert r.code == 0, r.err

    r = await tfaas_cli("--upload=missing.json", cwd=tmp_path)
    assert r.code == 1 and "not found" in r.err
    (tmp_path / "bad.json").write_text("{not json")
    r = await tfaas_cli("--predict=bad.json", cwd=tmp_path)
    assert r.code == 1 and "not valid JSON" in r.err
    (tmp_path / "up.json").write_text(json.dumps({"name": "x", "model": "nothere.pb"}))
    r = await tfaas_cli("--upload=up.json", cwd=tmp_path)
    assert r.code == 1 and "nothere.pb" in r.err
    r = await tfaas_cli("--delete=ghost", "--json")
    assert r.code == 1 and json.loads(r.err)["status"] == 404

    r = await tfaas_cli("--models", url_arg=False, env={"TFAAS_URL": ""})
    assert r.code == 1 and "--url" in r.err
    r = await tfaas_cli("--models", url_arg=False, env={"TFAAS_URL": "http://127.0.0.1:9/"})
    assert r.code == 1 and "connection refused" in r.err
    r = await tfaas_cli()
    assert r.code == 1 and "nothing to do" in r.err
    for run in (r,):
        assert "Traceback" not in run.err


async def test_output_into_a_closed_pipe_is_quiet(
    tfaas_cli, seed_dir: Path, tmp_path: Path
) -> None:
    """`tfaas ... | head`: the reader goes away; no error message, no traceback."""
    assert (await tfaas_cli(f"--upload={seed_dir / 'upload.json'}")).code == 0
    doc = json.loads((seed_dir / "input.json").read_text())
    big = tmp_path / "big.json"  # an answer far larger than a pipe holds
    big.write_text(json.dumps({"model": "vk", "values": [doc["values"]] * 20000}))
    script = shutil.which("tfaas", path=os.path.dirname(sys.executable))
    command = script or f"{sys.executable} -m tfaas_jupyter.client.cli"
    shell = (f"{command} --url={tfaas_cli.url} --predict={big} | "
             "python3 -c 'import sys; sys.stdin.read(1)'")
    proc = await asyncio.create_subprocess_shell(
        shell, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TFAAS_TOKEN": tfaas_cli.token},
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert b"Broken pipe" not in err and b"Traceback" not in err, err


async def test_an_address_copied_from_the_browser(tfaas_cli) -> None:
    """--url (or TFAAS_URL) may be a notebook's address with ?token=, which comes before
    the token of the environment."""
    root = tfaas_cli.url[: -len("tfaas")]
    lab = f"{root}lab/tree/dir/demo.ipynb?token={tfaas_cli.token}"
    r = await tfaas_cli(f"--url={lab}", "--models", "--json", "--verbose", url_arg=False,
                        env={"TFAAS_TOKEN": "wrong"})
    assert r.code == 0, r.err
    assert r.json() == [] and f"tfaas: url {root}tfaas/, token given" in r.err
    r = await tfaas_cli("--models", "--json", url_arg=False,
                        env={"TFAAS_TOKEN": "", "TFAAS_URL": f"{root}notebooks/x.ipynb",
                             "JUPYTER_TOKEN": tfaas_cli.token})
    assert r.code == 0 and r.json() == [], r.err


async def _upload_ids(tfaas_cli, built, folder: Path) -> None:
    spec = folder / "upload.json"
    spec.write_text(json.dumps({"name": "ids", "model": str(built["int64_ids"].path)}))
    r = await tfaas_cli(f"--upload={spec}", "--json")
    assert r.code == 0, r.err


async def test_int64_ids_reach_the_model_exactly(tfaas_cli, built, tmp_path: Path) -> None:
    """input.json's integers reach the int64 model as written: the low bits of
    1700000001 are 257 (float32 would have made it 1700000000: 256)."""
    await _upload_ids(tfaas_cli, built, tmp_path)
    (tmp_path / "input.json").write_text(
        '{"model": "ids", "values": [1700000001, 1099511627779]}')
    r = await tfaas_cli(f"--predict={tmp_path / 'input.json'}")
    assert r.code == 0, r.err
    assert json.loads(r.out)[:2] == [257, 3]
    (tmp_path / "half.json").write_text('{"model": "ids", "values": [1700000001, 0.5]}')
    r = await tfaas_cli(f"--predict={tmp_path / 'half.json'}")
    assert r.code == 1 and "400" in r.err and "whole numbers" in r.err


async def test_int64_round_trip_exact(tfaas_cli, built, tmp_path: Path) -> None:
    """1700000001 and 2**53 + 1 in, exact int64 out (needs a server that answers int64
    outputs as JSON integers)."""
    await _upload_ids(tfaas_cli, built, tmp_path)
    (tmp_path / "input.json").write_text(
        '{"model": "ids", "values": [1700000001, 9007199254740993]}')
    for flags in ((), ("--json",)):
        r = await tfaas_cli(f"--predict={tmp_path / 'input.json'}", *flags)
        assert r.code == 0, r.err
        answer = json.loads(r.out)
        assert answer == [257, 1, 1700000002, 9007199254740994]
        assert all(type(v) is int for v in answer), r.out


def test_no_arguments_prints_the_usage() -> None:
    """``tfaas`` alone: the usage on stdout (as --help), exit 2 as a usage error."""
    import subprocess

    script = shutil.which("tfaas", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "tfaas_jupyter.client.cli"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "TFAAS_URL"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.startswith("usage: tfaas") and "--upload" in proc.stdout
    assert "--predict" in proc.stdout and proc.stderr == ""
