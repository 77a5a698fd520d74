"""Version labels: set, move (rollback), delete; every API resolves them the same way; a
labelled version cannot be deleted; a storm of predictions through a label sees no
failure while versions are uploaded, labels moved and versions deleted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
from helpers import TFaaSCaller
from tornado.httpclient import AsyncHTTPClient

from tfaas_jupyter.client.api import TFaaSClient

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="session")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> list[tfmodels.Built]:
    """Three frozen graphs with different weights: versions 1, 2, 3 answer differently."""
    root = tmp_path_factory.mktemp("labels")
    return [tfmodels.make_graphdef(root / f"g{seed}", seed=seed) for seed in (11, 12, 13)]


def row(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, tfmodels.N_IN)).astype(np.float32)


async def seed_predict(tfaas: TFaaSCaller, x: np.ndarray, version: Any = None) -> Any:
    doc: dict[str, Any] = {"model": "g", "values": x[0].tolist()}
    if version is not None:
        doc["version"] = version
    return await tfaas.predict(doc)


async def test_labels_everywhere(
    tfaas: TFaaSCaller, graphs: list[tfmodels.Built], model_dir: Path,
    jp_http_port: int, jp_base_url: str, jp_serverapp,
) -> None:
    for built in graphs:
        await tfaas.uploaded(directory=built.path.parent, name="g")
    x = row(1)
    expected = [np.float32(b.reference([x])[0][0, 0]) for b in graphs]

    reply = await tfaas.call("PUT", "models/g/labels/stable", b'{"version": 1}')
    assert reply.code == 200, reply.body
    assert reply.json() == {"name": "g", "version_labels": {"stable": 1}}
    assert json.loads((model_dir / "g" / "labels.json").read_text()) == {"stable": 1}
    await tfaas.call("PUT", "models/g/labels/canary", b'{"version": 3}')
    detail = (await tfaas.call("GET", "models/g")).json()
    assert detail["version_labels"] == {"canary": 3, "stable": 1}
    listed = {m["name"]: m for m in (await tfaas.call("GET", "models")).json()}
    assert listed["g"]["version_labels"] == {"canary": 3, "stable": 1}  # the panel shows them
    assert (await tfaas.call("GET", "models/g/labels/canary")).json()["version"] == 3

    async def through_every_api(label: str) -> list[float]:
        answers = [(await seed_predict(tfaas, x, label)).json()[0]]
        v2 = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32",
                          "data": x[0].tolist()}]}
        reply = await tfaas.call("POST", f"v2/models/g/versions/{label}/infer",
                                 json.dumps(v2).encode())
        assert reply.code == 200, reply.body
        answers.append(reply.json()["outputs"][0]["data"][0])
        http = AsyncHTTPClient()
        base = f"http://localhost:{jp_http_port}{jp_base_url}tfaas/"
        headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
        response = await http.fetch(
            f"{base}v1/models/g/labels/{label}:predict", method="POST", headers=headers,
            body=json.dumps({"instances": x.tolist()}).encode(),
        )
        answers.append(json.loads(response.body)["predictions"][0][0])
        client = TFaaSClient(base, token=jp_serverapp.identity_provider.token, timeout=120)
        try:
            answers.append(float((await asyncio.to_thread(
                client.predict, "g", x[0], version=label))[0]))
        finally:
            client.close()
        return answers

    assert await through_every_api("stable") == [expected[0]] * 4
    assert await through_every_api("canary") == [expected[2]] * 4
    # move (promote the canary), then roll back
    await tfaas.call("PUT", "models/g/labels/stable", b'{"version": 3}')
    assert (await seed_predict(tfaas, x, "stable")).json()[0] == expected[2]
    await tfaas.call("PUT", "models/g/labels/stable", b'{"version": 1}')
    assert (await seed_predict(tfaas, x, "stable")).json()[0] == expected[0]
    assert (await seed_predict(tfaas, x, 2)).json()[0] == expected[1]
    status = (await AsyncHTTPClient().fetch(
        f"http://localhost:{jp_http_port}{jp_base_url}tfaas/v1/models/g/labels/stable",
        headers={"Authorization": f"token {jp_serverapp.identity_provider.token}"}))
    assert json.loads(status.body)["model_version_status"][0]["version"] == "1"

    # a labelled version is not deleted; once unlabelled it is
    reply = await tfaas.call("DELETE", "delete/g/1")
    assert reply.code == 409 and "stable" in reply.json()["error"], reply.body
    reply = await tfaas.call("DELETE", "models/g/labels/stable")
    assert reply.json()["version_labels"] == {"canary": 3}
    assert (await tfaas.call("DELETE", "delete/g/1")).code == 200

    # errors name the problem
    for method, path, body, status, words in [
        ("PUT", "models/g/labels/stable", b'{"version": 9}', 404, "no version 9"),
        ("PUT", "models/g/labels/stable", b'{"version": "x"}', 400, "positive integer"),
        ("PUT", "models/g/labels/stable", b"[]", 400, '{"version": N}'),
        ("PUT", "models/g/labels/123", b'{"version": 2}', 400, "not only digits"),
        ("PUT", "models/nope/labels/stable", b'{"version": 1}', 404, "not found"),
        ("GET", "models/g/labels/stable", None, 404, "no version label 'stable'"),
        ("DELETE", "models/g/labels/stable", None, 404, "no version label 'stable'"),
    ]:
        reply = await tfaas.call(method, path, body)
        assert reply.code == status, (path, body, reply.body)
        assert words in reply.json()["error"], (path, body, reply.body)
    reply = await seed_predict(tfaas, x, "stable")
    assert reply.code == 404 and "no version label 'stable'" in reply.json()["error"]
    reply = await seed_predict(tfaas, x, "bad label!")
    assert reply.code == 400


async def test_storm_through_labels(tfaas: TFaaSCaller, graphs: list[tfmodels.Built]) -> None:
    """Predictions through a label and through the latest version never fail while new
    versions are uploaded, the label is moved and old versions are deleted."""
    for built in graphs[:2]:
        await tfaas.uploaded(directory=built.path.parent, name="g")
    await tfaas.call("PUT", "models/g/labels/stable", b'{"version": 1}')
    x = row(2)
    allowed = {np.float32(b.reference([x])[0][0, 0]) for b in graphs}
    failures: list[Any] = []
    done = asyncio.Event()
    counts = {"label": 0, "latest": 0}

    async def predictor(version: Any, kind: str) -> None:
        for _ in range(400):  # bounded
            reply = await seed_predict(tfaas, x, version)
            if reply.code != 200 or np.float32(reply.json()[0]) not in allowed:
                failures.append((kind, reply.code, reply.body[:200]))
            counts[kind] += 1
            if done.is_set():
                return

    async def operator() -> None:
        try:
            for built in graphs:  # versions 3, 4, 5
                number = await tfaas.uploaded(directory=built.path.parent, name="g")
                reply = await tfaas.call("PUT", "models/g/labels/stable",
                                         json.dumps({"version": number}).encode())
                assert reply.code == 200, reply.body
                previous = number - 2
                reply = await tfaas.call("DELETE", f"delete/g/{previous}")
                assert reply.code == 200, reply.body
            reply = await tfaas.call("PUT", "models/g/labels/stable", b'{"version": 4}')
            assert reply.code == 200  # a rollback
        finally:
            done.set()

    await asyncio.gather(operator(), *[predictor("stable", "label") for _ in range(3)],
                         predictor(None, "latest"))
    assert not failures, failures[:5]
    assert counts["label"] > 0 and counts["latest"] > 0
    detail = (await tfaas.call("GET", "models/g")).json()
    assert detail["versions"] == [4, 5] and detail["version_labels"] == {"stable": 4}
