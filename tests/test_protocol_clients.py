"""Version labels and the export from the ``tfaas`` command and the ``%tfaas`` magics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TFaaSCaller
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from test_cli import tfaas_cli  # noqa: F401 - the fixture
from test_magics import call, shell  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(600)


async def test_cli_labels_and_export(tfaas_cli, tfaas: TFaaSCaller,  # noqa: F811
                                     seed_dir: Path, tmp_path: Path) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    assert (await tfaas.call("PUT", "models/vk/labels/stable", b'{"version": 1}')).code == 200
    r = await tfaas_cli(f"--predict={seed_dir / 'input.json'}", "--version=stable")
    assert r.code == 0, r.err
    latest = await tfaas.predict(json.loads((seed_dir / "input.json").read_text()))
    assert json.loads(r.out) == latest.json()  # both versions are the same model
    r = await tfaas_cli(f"--predict={seed_dir / 'input.json'}", "--version=nolabel")
    assert r.code == 1 and "no version label 'nolabel'" in r.err
    r = await tfaas_cli("--delete=vk", "--version=stable")
    assert r.code == 1 and "--delete takes a version number" in r.err
    r = await tfaas_cli(f"--export={tmp_path / 'out'}", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["exported"] == str(tmp_path / "out")
    assert (tmp_path / "out" / "models" / "vk" / "2" / "saved_model.pb").is_file()
    assert json.loads(r.out)["triton"] == str(tmp_path / "out" / "triton")
    triton = tmp_path / "out" / "triton" / "vk"
    assert (triton / "2" / "model.savedmodel" / "saved_model.pb").is_file()
    assert 'platform: "tensorflow_savedmodel"' in (triton / "config.pbtxt").read_text()
    config = (tmp_path / "out" / "models.config").read_text()
    assert 'version_labels { key: "stable" value: 1 }' in config


async def test_magics_labels_and_export(
    shell: InteractiveShell, tfaas: TFaaSCaller, jp_http_port: int,  # noqa: F811
    jp_base_url: str, jp_serverapp, seed_dir: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    assert (await tfaas.call("PUT", "models/vk/labels/prod", b'{"version": 1}')).code == 200
    token = jp_serverapp.identity_provider.token
    await call(shell, f"connect http://localhost:{jp_http_port}{jp_base_url} --token {token}")
    shell.user_ns["row"] = json.loads((seed_dir / "input.json").read_text())["values"]
    frame = await call(shell, "predict --version prod vk row")
    assert frame.shape == (1, 1)
    with pytest.raises(UsageError, match="no version label 'beta'"):
        await call(shell, "predict --version beta vk row")
    with pytest.raises(UsageError, match="--version takes a number"):
        await call(shell, "delete vk --version prod")
    capsys.readouterr()
    await call(shell, f"export {tmp_path / 'cluster'} --model vk")
    assert "triton/" in capsys.readouterr().out
    assert (tmp_path / "cluster" / "triton" / "vk" / "config.pbtxt").is_file()
    assert (tmp_path / "cluster" / "kserve" / "vk-triton.yaml").is_file()
    assert (tmp_path / "cluster" / "kserve" / "vk.yaml").is_file()
    assert (tmp_path / "cluster" / "models" / "vk" / "1" / "assets" / "params.json").is_file()
