"""Storms: many clients predicting while others upload and delete; limits under load
(max_concurrent_requests, cache_size) answer 503/4xx and never exhaust the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TFaaSCaller, metric_value, scrape

pytestmark = pytest.mark.timeout(900)


def talk_input(seed_dir: Path) -> list[float]:
    return json.loads((seed_dir / "input.json").read_text())["values"]


@pytest.mark.parametrize("tfaas_config", [{"max_concurrent_requests": 1}])
async def test_beyond_max_concurrent_requests_is_503_busy(
    tfaas: TFaaSCaller, seed_dir: Path, jp_serverapp
) -> None:
    service = jp_serverapp.web_app.settings["tfaas_service"]
    assert service.limits.max_concurrent_requests == 1  # the traitlet reached the service
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = {"model": "vk", "values": [talk_input(seed_dir)] * 5000}
    replies = await asyncio.gather(*(tfaas.predict(doc) for _ in range(12)))
    codes = sorted(r.code for r in replies)
    assert set(codes) <= {200, 503}, codes
    assert 200 in codes and 503 in codes, codes
    for reply in replies:
        if reply.code == 503:
            assert reply.json()["error"].startswith("server busy"), reply.body
            assert reply.headers["Retry-After"] == "1"
    assert service.in_flight == 0
    assert (await tfaas.predict(doc)).code == 200  # free again
    metrics = scrape((await tfaas.call("GET", "metrics")).body.decode())
    assert metric_value(metrics, "tfaas_busy_total") == codes.count(503)


@pytest.mark.parametrize("tfaas_config", [{"cache_size": 2}])
async def test_cache_size_bounds_loaded_models(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    names = ["m1", "m2", "m3", "m4"]
    for name in names:
        assert (await tfaas.upload_dir(seed_dir, name)).code == 200
    x = talk_input(seed_dir)
    first = None
    for _round in range(2):
        for name in names:
            reply = await tfaas.predict({"model": name, "values": x})
            assert reply.code == 200, reply.body
            first = first or reply.json()
            assert reply.json() == first
            status = (await tfaas.call("GET", "status")).json()
            assert status["cache"]["capacity"] == 2
            assert len(status["worker"]["loaded"]) <= 2, status["worker"]["loaded"]


async def test_storm_of_predictions_uploads_and_deletes(
    tfaas: TFaaSCaller, seed_dir: Path, model_dir: Path
) -> None:
    """30 predicting loops on two models that stay, while one of them gets new versions
    and two others are deleted and uploaded again: no prediction on a staying model
    fails, and the repository ends consistent."""
    x = talk_input(seed_dir)
    for name in ("stay", "grow", "churn1", "churn2"):
        assert (await tfaas.upload_dir(seed_dir, name)).code == 200
    expected = (await tfaas.predict({"model": "stay", "values": x})).json()
    stop = asyncio.Event()
    failures: list[str] = []
    counts = {"predictions": 0, "uploads": 0, "deletes": 0}

    async def predictor(i: int) -> None:
        model = ("stay", "grow")[i % 2]
        rows = [x] * (1 + i % 3)
        for _ in range(400):
            if stop.is_set():
                return
            reply = await tfaas.predict({"model": model, "values": rows})
            counts["predictions"] += 1
            if reply.code != 200:
                failures.append(f"{model}: {reply.code} {reply.body[:200]!r}")
                continue
            got = reply.json()
            got = got if len(rows) > 1 else [got]
            if not np.allclose(np.array(got), np.array([expected] * len(rows)), rtol=1e-6):
                failures.append(f"{model}: wrong numbers {got}")

    async def grower() -> None:
        for _ in range(4):
            reply = await tfaas.upload_dir(seed_dir, "grow")
            if reply.code != 200:
                failures.append(f"upload grow: {reply.code} {reply.body[:200]!r}")
            counts["uploads"] += 1

    async def churner(name: str) -> None:
        for _ in range(3):
            reply = await tfaas.call("DELETE", f"delete/{name}")
            if reply.code != 200:
                failures.append(f"delete {name}: {reply.code} {reply.body[:200]!r}")
            counts["deletes"] += 1
            # predictions on a deleted model are a clean 404 meanwhile
            gone = await tfaas.predict({"model": name, "values": x})
            if gone.code != 404:
                failures.append(f"{name} after delete: {gone.code}")
            reply = await tfaas.upload_dir(seed_dir, name)
            if reply.code != 200:
                failures.append(f"upload {name}: {reply.code} {reply.body[:200]!r}")
            counts["uploads"] += 1

    async def writers() -> None:
        try:
            await asyncio.gather(grower(), churner("churn1"), churner("churn2"))
        finally:
            stop.set()

    await asyncio.wait_for(
        asyncio.gather(writers(), *(predictor(i) for i in range(30))), timeout=600
    )
    assert failures == [], failures[:10]
    assert counts["predictions"] >= 30 and counts["uploads"] == 10 and counts["deletes"] == 6

    # the repository is consistent: every listed version loads and predicts
    models = (await tfaas.call("GET", "models")).json()
    listed = {m["name"]: m["versions"] for m in models}
    assert listed["stay"] == [1] and listed["grow"] == [1, 2, 3, 4, 5]
    assert set(listed) == {"stay", "grow", "churn1", "churn2"}
    for name, versions in listed.items():
        for version in versions:
            reply = await tfaas.predict({"model": name, "version": version, "values": x})
            assert reply.code == 200 and np.allclose(reply.json(), expected), (name, version)
    for special in (".staging", ".trash"):
        assert not list((model_dir / special).glob("*")), special
