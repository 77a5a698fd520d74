"""``%tfaas capture NAME`` in an in-process IPython shell against a real server with
capture on: the DataFrame the magic returns holds each prediction that was sent, with
its model, version and caller (the notebook's user, or a key's name), its inputs as
sent and its outputs as the seed model's numpy forward pass computes them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import TFaaSCaller, seed_predict
from IPython.core.interactiveshell import InteractiveShell
from test_keys import KeyCaller, create_key, keys_file, with_key  # noqa: F401 - fixtures
from test_magics import call, shell  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def tfaas_config(tmp_path: Path, keys_file: Path) -> dict[str, Any]:  # noqa: F811
    return {"capture_dir": str(tmp_path / "capture"), "keys_file": str(keys_file)}


async def test_the_capture_magic_returns_what_was_scored(
    shell: InteractiveShell, tfaas: TFaaSCaller, with_key: KeyCaller,  # noqa: F811
    jp_http_port: int, jp_base_url: str, jp_serverapp, seed_dir: Path,
) -> None:
    for _ in range(2):  # vk versions 1 and 2
        await tfaas.uploaded(directory=seed_dir, name="vk")
    token = jp_serverapp.identity_provider.token
    await call(shell, f"connect http://localhost:{jp_http_port}{jp_base_url} --token {token}")
    talk = json.loads((seed_dir / "input.json").read_text())["values"]
    # what is sent: (rows, version asked for, sent with the key)
    sent = [([[v * 0.9 for v in talk], [v - 0.2 for v in talk]], None, False),
            ([[v + 0.05 for v in talk]], 1, False),
            ([[v * 1.1 for v in talk]], None, True)]
    for i, (rows, version, _) in enumerate(sent[:2]):
        shell.user_ns[f"rows{i}"] = rows
        line = f"predict {'' if version is None else f'--version {version} '}vk rows{i}"
        frame = await call(shell, line)
        assert frame.shape == (len(rows), 1)
    key = (await create_key(tfaas, "grid-job", models=["vk"]))["key"]
    reply = await with_key.call("POST", "json", key,
                                json.dumps({"model": "vk", "values": sent[2][0][0]}).encode())
    assert reply.code == 200, reply.body

    assert len(await call(shell, "capture vk --since 2999-01-01")) == 0
    frame = await call(shell, "capture vk --since 2000-01-01T00:00Z --until 2999-01-01")
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(sent)
    frame = frame.sort_values("time").reset_index(drop=True)
    inputs = [c for c in frame.columns if c.startswith("input:") and not c.endswith(":shape")]
    outputs = [c for c in frame.columns
               if c.startswith("output:") and not c.endswith(":shape")]
    assert len(inputs) == 1 and len(outputs) == 1
    assert list(frame["model"]) == ["vk"] * len(sent)
    # no --version: the latest (2)
    assert list(frame["version"]) == [2 if v is None else v for _, v, _ in sent]
    assert frame.loc[2, "caller"] == "key:grid-job"
    # the notebook's own: the Jupyter user (under a shared token, the anonymous user
    # Jupyter makes for each request)
    for caller in frame.loc[:1, "caller"]:
        assert caller and not caller.startswith("key:")
    for (_, row), (rows, _, _) in zip(frame.iterrows(), sent):
        x = np.asarray(rows, dtype=np.float32)
        assert row[inputs[0]].dtype == np.float32
        np.testing.assert_array_equal(row[inputs[0]], x.ravel())
        assert list(row[f"{inputs[0]}:shape"]) == [len(rows), 42]
        assert list(row[f"{outputs[0]}:shape"]) == [len(rows), 1]
        np.testing.assert_allclose(row[outputs[0]], np.ravel(seed_predict(rows)), rtol=1e-5)
        assert row["latency_ms"] > 0
