"""The curl recipes of docs/clients/curl.md, run as written with bash against the live server.

Only the variables of the first (setup) block are substituted: ``TFAAS`` (the tfaas
base URL), ``JUPYTER_TOKEN``, ``SEED`` (a copy of the seed folder, plus the image
model and picture the image recipe stands for) and ``PROTO``. Each later block runs
after the setup block in a fresh bash with ``set -euo pipefail``; it must exit 0 and
print every ``#=> text`` it announces.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the page the recipes are on, and their section
PAGE = ROOT / "docs" / "clients" / "curl.md"
SECTION = "## curl recipes"
pytestmark = pytest.mark.timeout(900)


def recipe_blocks(readme: str) -> list[str]:
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end > 0 else None]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def substitute_setup(setup: str, values: dict[str, str]) -> str:
    out = []
    for line in setup.splitlines():
        m = re.match(r"export (\w+)=", line)
        if m and m.group(1) in values:
            line = f"export {m.group(1)}='{values[m.group(1)]}'"
        out.append(line)
    return "\n".join(out) + "\n"


def test_recipes_are_well_formed() -> None:
    blocks = recipe_blocks(PAGE.read_text())
    assert len(blocks) >= 8
    for block in blocks[1:]:
        # a curl command may span lines ending in "\"
        commands = re.sub(r"\\\n", " ", block).splitlines()
        for command in commands:
            if not command.lstrip().startswith("curl"):
                continue
            if "# no token" not in command:
                assert 'Authorization: token $JUPYTER_TOKEN' in command, command
            assert "-fsS" in command or "http_code" in command or "-sS" in command, command


@pytest.fixture
def recipe_seed(seed_dir: Path, tmp_path: Path) -> Path:
    """The seed folder plus what the image recipe stands for: an image model, labels, a png."""
    import keras
    from PIL import Image

    seed = tmp_path / "seed"
    shutil.copytree(seed_dir, seed)
    keras.utils.set_random_seed(2)
    inp = keras.Input(shape=(4, 4, 3))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp))
    keras.Model(inp, out).save(str(seed / "image_model.keras"))
    (seed / "image_labels.txt").write_text("cat\ndog\n")
    Image.fromarray((np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)).save(
        seed / "file.png")
    return seed


async def test_every_recipe_runs(jp_fetch, jp_http_port: int, jp_base_url: str, jp_serverapp,
                                 recipe_seed: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    blocks = recipe_blocks(PAGE.read_text())
    needs_protoc = any("protoc" in b for b in blocks)
    if needs_protoc and shutil.which("protoc") is None:
        pytest.skip("protoc is not installed (apt-get install protobuf-compiler)")
    setup = substitute_setup(blocks[0], {
        "TFAAS": f"http://localhost:{jp_http_port}{jp_base_url}tfaas",
        "JUPYTER_TOKEN": jp_serverapp.identity_provider.token,
        "SEED": str(recipe_seed),
        "PROTO": str(ROOT / "proto"),
    })
    assert str(recipe_seed) in setup and "localhost" in setup
    for number, block in enumerate(blocks[1:], start=2):
        script = "set -euo pipefail\n" + setup + block
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", script, cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out_b, err_b = await asyncio.wait_for(proc.communicate(), timeout=300)
        out, err = out_b.decode(), err_b.decode()
        assert proc.returncode == 0, f"recipe {number} failed ({proc.returncode}):\n{block}\n{err}"
        for expected in re.findall(r"^#=> (.*)$", block, flags=re.M):
            assert expected.strip() in out, (
                f"recipe {number}: {expected!r} not in the output:\n{out}\n{err}")
