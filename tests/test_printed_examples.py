"""Every example we print runs as printed: the ``tfaas/`` page's per-model calls and
``%tfaas curl``'s line, each copied into a shell and run, answer what the model computes
for the row they send (a real row of the model's width, zeros of its inputs' kinds)."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import TFaaSCaller, seed_predict
from IPython.core.interactiveshell import InteractiveShell

from tfaas_jupyter.client import TFaaSClient, discovery
from tfaas_jupyter.examplerow import example_request

pytestmark = pytest.mark.timeout(900)


async def run_in_shell(line: str, cwd: Path, env: dict[str, str]) -> str:
    """``line`` as a user pastes it into bash; answers its output (it must succeed). Run
    without blocking: the server answering it shares this event loop."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", "set -o pipefail\n" + line, cwd=str(cwd), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode == 0, (line, out, err)
    return out.decode()


def page_calls(page: str) -> dict[str, list[str]]:
    """Per model heading, the page's command lines (a ``\\``-continued line joined)."""
    calls = {}
    for name, block in re.findall(r"<h3>(.*?)</h3>\s*<pre>(.*?)</pre>", page, re.S):
        text = html.unescape(block).replace("\\\n", " ")
        calls[html.unescape(name)] = [line.strip() for line in text.splitlines() if line.strip()]
    return calls


def test_example_rows_follow_the_inputs() -> None:
    mixed = {"inputs": [{"name": "ids", "dtype": "int64", "shape": [None, 2]},
                        {"name": "x", "dtype": "float32", "shape": [None, 3]}]}
    assert example_request("m", mixed) == {"model": "m", "values": [0, 0, 0.0, 0.0, 0.0]}
    own = {**mixed, "example": [3, 4, 0.5, 1.5, 2.5]}
    assert example_request("m", own)["values"] == [3, 4, 0.5, 1.5, 2.5]
    assert example_request("m", {**mixed, "example": [1.0]})["values"][:2] == [0, 0]
    keyed = {"keys": ["a", "b"], "inputs": [{"dtype": "float32", "shape": [None, 2]}],
             "example": {"keys": ["a", "b"], "values": [1.0, 2.0]}}
    assert example_request("m", keyed) == {"model": "m", "keys": ["a", "b"],
                                           "values": [1.0, 2.0]}


async def test_the_pages_and_the_magics_examples_run_as_printed(
    tfaas: TFaaSCaller, seed_dir: Path, built, jp_fetch, jp_http_port: int, jp_base_url: str,
    jp_serverapp, tmp_path: Path,
) -> None:
    token = jp_serverapp.identity_provider.token
    root = f"http://localhost:{jp_http_port}{jp_base_url}"
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    with TFaaSClient(root + "tfaas", token=token, timeout=240) as client:
        await asyncio.to_thread(client.upload, "ids", built["int64_ids"].path)
    env = {**os.environ, "JUPYTER_TOKEN": token}
    want = {"vk": seed_predict([0.0] * 42), "ids": [0, 0, 1, 1]}  # ids: [a&1023, b&1023, a+1, b+1]

    page = (await jp_fetch("tfaas", "")).body.decode()
    calls = page_calls(page)
    assert sorted(calls) == ["ids", "vk"]
    assert not [line for lines in calls.values() for line in lines if "..." in line], calls
    for name, lines in calls.items():
        predict = [line for line in lines if "tfaas/json" in line]
        assert len(predict) == 1, lines
        answer = json.loads(await run_in_shell(predict[0], tmp_path, env))
        np.testing.assert_allclose(answer, want[name], rtol=1e-5, err_msg=name)

    # vk's upload line, run where its files are, stores version 2; ids' delete line deletes
    upload = next(line for line in calls["vk"] if "tfaas/upload" in line)
    assert json.loads(await run_in_shell(upload, seed_dir, env))["version"] == 2
    delete = next(line for line in calls["ids"] if "-X DELETE" in line)
    await run_in_shell(delete, tmp_path, env)
    models = json.loads((await tfaas.call("GET", "models")).body)
    assert [(m["name"], m["versions"]) for m in models] == [("vk", [1, 2])]
    with TFaaSClient(root + "tfaas", token=token, timeout=240) as client:
        await asyncio.to_thread(client.upload, "ids", built["int64_ids"].path)

    # %tfaas curl: the line as printed, in a shell with the token in $JUPYTER_TOKEN
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tfaas_jupyter")
    try:
        await asyncio.to_thread(shell.run_line_magic, "tfaas", f"connect {root} --token {token}")
        for name in ("vk", "ids"):
            out = await asyncio.to_thread(_printed, shell, f"curl {name}")
            line = next(ln for ln in out.splitlines() if ln.startswith("curl "))
            answer = json.loads(await run_in_shell(line, tmp_path, env))
            np.testing.assert_allclose(answer, want[name], rtol=1e-5, err_msg=name)
    finally:
        discovery.disconnect()


def _printed(shell: InteractiveShell, line: str) -> str:
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        shell.run_line_magic("tfaas", line)
    return captured.stdout
