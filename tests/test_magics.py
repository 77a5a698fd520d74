"""``%tfaas`` in an in-process IPython shell against a real server (pytest-jupyter),
plus the pure helpers. The kernel-and-server case is in test_notebook.py.

Magics block on HTTP, so they run in a thread (the server shares this event loop).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from conftest import seed_predict
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tfaas_jupyter.client import discovery
from tfaas_jupyter.client.discovery import ServerInfo
from tfaas_jupyter.client.magics import (
    HELP,
    curl_command,
    example_request,
    output_labels,
    parse_cell_input,
    predictions_frame,
)


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "tfaas_jupyter")
    yield ip
    discovery.disconnect()


def magic(shell: InteractiveShell, line: str, cell: str | None = None) -> Any:
    if cell is None:
        return shell.run_line_magic("tfaas", line)
    return shell.run_cell_magic("tfaas", line, cell)


async def call(shell: InteractiveShell, line: str, cell: str | None = None) -> Any:
    return await asyncio.to_thread(magic, shell, line, cell)


async def test_path_upload_predict_versions_delete(
    shell: InteractiveShell, jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp,
    seed_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    token = jp_serverapp.identity_provider.token
    await call(shell, f"connect http://localhost:{jp_http_port}{jp_base_url} --token {token}")
    assert "(connect; 0 model(s))" in capsys.readouterr().out

    line = (f"upload {seed_dir / 'model.pb'} --name vk --params {seed_dir / 'params.json'} "
            f"--labels {seed_dir / 'labels.txt'}")
    await call(shell, line)
    assert "uploaded vk version 1 (graphdef" in capsys.readouterr().out
    await call(shell, line)
    assert "uploaded vk version 2" in capsys.readouterr().out

    doc = json.loads((seed_dir / "input.json").read_text())
    shell.user_ns["row"] = doc["values"]
    frame = await call(shell, "predict vk row")
    assert list(frame.columns) == ["signal"] and frame.shape == (1, 1)
    np.testing.assert_allclose(frame.iloc[0, 0], seed_predict(doc["values"])[0], rtol=1e-5)
    old = await call(shell, "predict --version 1 vk [row, row]")
    assert old.shape == (2, 1) and old.iloc[1, 0] == pytest.approx(frame.iloc[0, 0], rel=1e-6)
    cell = await call(shell, "predict vk", json.dumps(doc))
    assert cell.iloc[0, 0] == pytest.approx(frame.iloc[0, 0], rel=1e-6)

    models = await call(shell, "models")
    assert list(models.index) == ["vk"] and models.loc["vk", "versions"] == [1, 2]
    await call(shell, "status")
    out = capsys.readouterr().out
    assert "models on disk: vk" in out and "vk:" in out

    # Errors are UsageErrors with one line of reason.
    with pytest.raises(UsageError, match="expects 42 values per row, got 2"):
        await call(shell, "predict vk [1, 2]")
    with pytest.raises(UsageError, match="cannot evaluate 'undefined_name'"):
        await call(shell, "predict vk undefined_name")
    with pytest.raises(UsageError, match="neither a variable of this notebook nor a file"):
        await call(shell, "upload nothing_here --name x")
    with pytest.raises(UsageError, match="required: --name"):
        await call(shell, f"upload {seed_dir / 'model.pb'}")

    await call(shell, "delete vk --version 1")
    assert "deleted vk version(s) [1]" in capsys.readouterr().out
    await call(shell, "curl vk --show-token")
    line = capsys.readouterr().out.strip()
    assert token in line and f"{jp_base_url}tfaas/json" in line
    await call(shell, "delete vk")
    assert (await call(shell, "models")) is None
    assert "no models" in capsys.readouterr().out


async def test_connect_with_a_bad_token_is_a_clear_error(
    shell: InteractiveShell, jp_fetch, jp_http_port: int, jp_base_url: str
) -> None:
    with pytest.raises(UsageError, match="tfaas connect: .*(refused|403|forbidden)"):
        await call(shell, f"connect http://localhost:{jp_http_port}{jp_base_url} --token bad")
    assert discovery._explicit is None  # a failed connect leaves nothing behind


def test_help_and_unknown(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    for line in ("", "help", "--help"):
        magic(shell, line)
        assert capsys.readouterr().out.strip() == HELP.strip()
    with pytest.raises(UsageError, match="unknown command 'frobnicate'"):
        magic(shell, "frobnicate")
    with pytest.raises(UsageError, match="takes no cell"):
        magic(shell, "models", "x")
    magic(shell, "delete --help")
    assert "--version" in capsys.readouterr().out


def test_discovery_failure_says_how_to_connect(shell: InteractiveShell, monkeypatch) -> None:
    def fail(**_: Any) -> ServerInfo:
        raise discovery.DiscoveryError("tfaas: cannot find ...; " + discovery.CONNECT_HELP)

    monkeypatch.setattr(discovery, "find_server", fail)
    with pytest.raises(UsageError, match="%tfaas connect"):
        magic(shell, "models")


def test_helpers() -> None:
    assert output_labels({"label_names": ["a", "b"]}, 2) == ["a", "b"]
    assert output_labels({"label_names": ["a"]}, 2) == ["output_0", "output_1"]
    assert output_labels(None, 1) == ["output_0"]
    frame = predictions_frame([0.1, 0.9], {"label_names": ["n", "p"]})
    assert list(frame.columns) == ["n", "p"] and frame.shape == (1, 2)

    model = {"inputs": [{"name": "x", "shape": [None, 3, 2]}]}
    assert example_request("m", model) == {"model": "m", "values": [0.0] * 6}
    assert example_request("m", {"keys": ["a", "b"]})["keys"] == ["a", "b"]

    server = ServerInfo("http://127.0.0.1:8888/user/x/", "s3cr3t", "test")
    line = curl_command(server, "m", {"keys": ["a"]})
    assert '"Authorization: token $JUPYTER_TOKEN"' in line and "s3cr3t" not in line
    words = shlex.split(line.replace("$JUPYTER_TOKEN", "T"))
    assert words[-1] == "http://127.0.0.1:8888/user/x/tfaas/json"
    assert json.loads(words[words.index("-d") + 1]) == {"model": "m", "keys": ["a"],
                                                        "values": [0.0]}
    assert "token s3cr3t" in curl_command(server, "m", None, show_token=True)

    assert parse_cell_input('{"keys": ["a"], "values": [1]}') == ([1], ["a"])
    assert parse_cell_input("[[1, 2]]") == ([[1, 2]], None)
    with pytest.raises(UsageError, match="not JSON"):
        parse_cell_input("{nope")
