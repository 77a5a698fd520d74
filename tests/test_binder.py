"""The repository launches on Binder: the environment repo2docker builds from binder/
(requirements.txt into a fresh environment, then postBuild in a copy of the repository)
has the extension enabled and serves the demo model from the start."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import load_example
from servers import jupyter_server, listed_lines

ROOT = Path(__file__).resolve().parents[1]


def _copy_checkout(target: Path) -> None:
    """The repository's files as a clone has them (no venv, no build output)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / raw.decode()
        if source.is_file():
            (target / raw.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / raw.decode())


@pytest.mark.timeout(3000)
def test_the_binder_environment_serves_the_demo_model(tmp_path: Path) -> None:
    repo, venv, home = tmp_path / "repo", tmp_path / "venv", tmp_path / "home"
    repo.mkdir()
    _copy_checkout(repo)
    version = json.loads((repo / "labextension" / "package.json").read_text())["version"]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIRTUAL_ENV"))},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    python = str(venv / "bin" / "python")
    # repo2docker: requirements.txt first, then postBuild, both from the repository root
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
                   cwd=repo, env=env, check=True, timeout=1200)
    subprocess.run(["bash", "binder/postBuild"], cwd=repo, env=env, check=True, timeout=1800,
                   stdout=subprocess.DEVNULL)

    listing = subprocess.run([python, "-m", "jupyter", "server", "extension", "list"],
                             cwd=home, env=env, capture_output=True, text=True, check=True)
    text = listing.stdout + listing.stderr
    assert listed_lines(text, r"tfaas_jupyter enabled") == ["tfaas_jupyter enabled"], text
    assert listed_lines(text, rf"tfaas_jupyter {re.escape(version)} OK"), text
    lab = subprocess.run([python, "-m", "jupyter", "lab", "--version"], cwd=home, env=env,
                         capture_output=True, text=True, check=True)
    assert int(lab.stdout.strip().split(".")[0]) >= 4, lab.stdout
    panel = subprocess.run([python, "-m", "jupyter", "labextension", "list"], cwd=home,
                           env=env, capture_output=True, text=True, check=True)
    text = panel.stdout + panel.stderr
    expected = rf"tfaas-jupyter v{re.escape(version)} enabled OK \(python, tfaas-jupyter\)"
    assert len(listed_lines(text, expected)) == 1, text
    assert len(listed_lines(text, r"tfaas-jupyter .*")) == 1, text

    seed = load_example("make_seed_model")
    with jupyter_server(home, model_dir=home / "data" / "tfaas" / "models", python=python,
                        env={k: env[k] for k in ("PATH", "JUPYTER_DATA_DIR")}) as server:
        models = server.call("GET", "tfaas/models")
        assert [m["name"] for m in models] == ["vk"], models
        (probability,) = server.call("POST", "tfaas/json",
                                     {"model": "vk", "values": seed.VALUES})
        expected = seed.predict(np.asarray([seed.VALUES], dtype=np.float32))[0, 0]
        assert abs(probability - expected) < 1e-5, (probability, expected)
