"""``%tfaas`` in an in-process IPython shell against a real server (pytest-jupyter),
plus the pure helpers. The kernel-and-server case is in test_notebook.py.

Magics block on HTTP, so they run in a thread (the server shares this event loop).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import stat
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from helpers import seed_predict
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from tfaas_jupyter.client import TFaaSClient, discovery
from tfaas_jupyter.client.discovery import ServerInfo
from tfaas_jupyter.client.magics import (
    HELP,
    curl_command,
    example_request,
    output_labels,
    parse_cell_input,
    predictions_frame,
)
from tfaas_jupyter.client.present import missing_extra


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
    assert list(models.index) == ["vk"] and models.loc["vk", "versions"] == "1, 2"
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
    printed = capsys.readouterr().out
    assert token not in printed and "Authorization" not in printed  # the notebook keeps no secret
    line = printed.strip().splitlines()[-1]
    assert f"{jp_base_url}tfaas/json" in line
    header_file = Path(shlex.split(line)[shlex.split(line).index("-H") + 1][1:])
    assert header_file.read_text() == f"Authorization: token {token}\n"
    assert stat.S_IMODE(header_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(header_file.parent.stat().st_mode) == 0o700
    proc = await asyncio.create_subprocess_exec(  # as printed, in a shell without the token
        "bash", "-c", line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"})
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err
    with TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}", token=token) as client:
        zeros = example_request("vk", await asyncio.to_thread(client.model, "vk"))
    expected = (await jp_fetch("tfaas", "json", method="POST", body=json.dumps(zeros))).body
    assert json.loads(out) == json.loads(expected)
    await call(shell, "delete vk")
    assert (await call(shell, "models")) is None
    assert "no models" in capsys.readouterr().out


async def test_connect_with_a_bad_token_is_a_clear_error(
    shell: InteractiveShell, jp_fetch, jp_http_port: int, jp_base_url: str
) -> None:
    with pytest.raises(UsageError, match="tfaas connect: .*(refused|403|forbidden)"):
        await call(shell, f"connect http://localhost:{jp_http_port}{jp_base_url} --token bad")
    assert discovery.explicit_server() is None  # a failed connect leaves nothing behind


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
    with_file = curl_command(server, "m", None, header_file=Path("/h/x.header"))
    assert "s3cr3t" not in with_file and shlex.split(with_file)[3] == "@/h/x.header"

    assert parse_cell_input('{"keys": ["a"], "values": [1]}') == ([1], ["a"])
    assert parse_cell_input("[[1, 2]]") == ([[1, 2]], None)
    with pytest.raises(UsageError, match="not JSON"):
        parse_cell_input("{nope")


async def _connect_and_upload_ids(shell: InteractiveShell, port: int, base_url: str,
                                  token: str, built: Any) -> None:
    await call(shell, f"connect http://localhost:{port}{base_url} --token {token}")
    await call(shell, f"upload {built['int64_ids'].path} --name ids")


async def test_predict_sends_int64_ids_exactly(
    shell: InteractiveShell, jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp,
    built: Any,
) -> None:
    """What the int64 model receives from %tfaas predict: the low bits of 1700000001
    are 257 (float32 would have sent 1700000000: 256)."""
    await _connect_and_upload_ids(shell, jp_http_port, jp_base_url,
                                  jp_serverapp.identity_provider.token, built)
    x = np.array([[1_700_000_001, 2**40 + 3]], dtype=np.int64)
    low_bits = built["int64_ids"].reference([x])[0]
    shell.user_ns["ids_array"] = x
    frame = await call(shell, "predict ids ids_array")
    assert frame.iloc[:, :2].to_numpy().tolist() == low_bits.tolist() == [[257, 3]]
    import pandas as pd

    shell.user_ns["ids_frame"] = pd.DataFrame(x)  # int64 columns
    frame = await call(shell, "predict ids ids_frame")
    assert frame.iloc[:, :2].to_numpy().tolist() == [[257, 3]]
    with pytest.raises(UsageError, match="whole numbers"):
        await call(shell, "predict ids [1700000001, 0.5]")


async def test_predict_int64_round_trip_exact(
    shell: InteractiveShell, jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp,
    built: Any,
) -> None:
    """%tfaas predict and %%tfaas predict: 1700000001 and 2**53 + 1 in, exact int64 out
    (needs a server that answers int64 outputs as JSON integers)."""
    await _connect_and_upload_ids(shell, jp_http_port, jp_base_url,
                                  jp_serverapp.identity_provider.token, built)
    want = [257, 1, 1_700_000_002, 2**53 + 2]
    frame = await call(shell, "predict ids [1700000001, 9007199254740993]")
    assert frame.dtypes.tolist() == [np.dtype(np.int64)] * 4
    assert frame.iloc[0].tolist() == want
    frame = await call(shell, "predict ids", '{"values": [1700000001, 9007199254740993]}')
    assert frame.iloc[0].tolist() == want
    shell.user_ns["ids_array"] = np.array([[1_700_000_001, 2**53 + 1]] * 2, dtype=np.int64)
    frame = await call(shell, "predict ids ids_array")
    assert frame.to_numpy().tolist() == [want, want]


async def test_keras_upload_keeps_tensorflow_quiet(
    shell: InteractiveShell, jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``%tfaas upload model``: one line, none of TensorFlow's INFO logs of the export
    (its "Assets written to" went to stdout and stderr), on any stream or descriptor."""
    import logging

    import tfmodels

    model = tfmodels._tiny_keras()
    shell.user_ns["model"] = model
    token = jp_serverapp.identity_provider.token
    await call(shell, f"connect http://localhost:{jp_http_port}{jp_base_url} --token {token}")
    capfd.readouterr()
    # As TensorFlow sets its logger up in an interactive session (a notebook): INFO, to
    # stdout, with the "INFO:tensorflow:" format.
    tf_logger = logging.getLogger("tensorflow")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    tf_level = tf_logger.level
    tf_logger.addHandler(handler)
    tf_logger.setLevel(logging.INFO)
    try:
        await call(shell, "upload model --name quiet")
        out, err = capfd.readouterr()
        assert tf_logger.level == logging.INFO  # put back after the export
    finally:
        tf_logger.removeHandler(handler)
        tf_logger.setLevel(tf_level)
    assert out.startswith("uploaded quiet version 1 (savedmodel;") and out.count("\n") == 1, out
    assert "Assets written" not in out + err and "INFO" not in out + err, (out, err)
    # a rerun of the notebook: --replace leaves one version, once the new one is stored
    await call(shell, "upload model --name quiet")
    assert capfd.readouterr().out.startswith("uploaded quiet version 2 ")
    await call(shell, "upload model --name quiet --replace")
    out = capfd.readouterr().out
    assert out.startswith("uploaded quiet version 3 ") and "; replaced version(s) 1, 2\n" in out
    shell.user_ns["not_a_model"] = object()
    with pytest.raises(UsageError, match="tfaas upload: "):  # a failed upload keeps all
        await call(shell, "upload not_a_model --name quiet --replace")
    await call(shell, "upload model --name fresh --replace")  # nothing to replace
    assert capfd.readouterr().out.startswith("uploaded fresh version 1 ")
    client = TFaaSClient(f"http://localhost:{jp_http_port}{jp_base_url}", token=token)
    versions = await asyncio.to_thread(lambda: client.model("quiet")["versions"])
    assert versions == [3]


def test_a_missing_optional_package_is_one_line(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel without the notebook extra: one line naming it, before any request."""
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` fails
    for line in ("predict vk [1, 2]", "models"):
        with pytest.raises(UsageError) as info:
            magic(shell, line)
        command = line.split()[0]
        assert str(info.value) == (
            f"%tfaas {command} needs pandas, which this Python does not have: "
            "pip install 'tfaas-jupyter[notebook]' (then restart the kernel)")
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.delitem(sys.modules, "tfaas_jupyter.client.widgets", raising=False)
    with pytest.raises(UsageError, match=r"^%tfaas browser needs ipywidgets, .*"
                                         r"pip install 'tfaas-jupyter\[notebook\]'"):
        magic(shell, "browser")
    # the helper names only our optional packages
    assert missing_extra("x", "keras.src") and "[tf]" in missing_extra("x", "keras.src")
    assert missing_extra("x", "tfaas_jupyter.nothing") is None


def test_question_mark_shows_the_full_help(shell: InteractiveShell) -> None:
    """``%tfaas?`` (IPython's pinfo) shows the whole help as plain text, no RST markup."""
    info = shell.object_inspect_text("%tfaas")
    assert HELP.strip() in info
    assert "``" not in info
    for line in ("%tfaas key create NAME", "%tfaas curl NAME", "%tfaas status"):
        assert line in info
