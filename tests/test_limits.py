"""Limits set as traitlets are enforced with clear 4xx answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TFaaSCaller


@pytest.fixture
def tfaas_config() -> dict:
    return {"max_upload_size": 300_000, "max_rows_per_request": 10}


async def test_oversized_upload_is_413(tfaas: TFaaSCaller, seed_dir: Path, model_dir) -> None:
    reply = await tfaas.upload("big", b"\0" * 400_000)
    assert reply.code == 413 and "limit" in reply.json()["error"]
    assert not list((model_dir / ".staging").glob("*"))
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200


async def test_too_many_rows_is_413(tfaas: TFaaSCaller, seed_dir: Path) -> None:
    await tfaas.upload_dir(seed_dir, "vk")
    values = json.loads((seed_dir / "input.json").read_text())["values"]
    reply = await tfaas.predict({"model": "vk", "values": [values] * 11})
    assert reply.code == 413 and "rows" in reply.json()["error"]
    assert (await tfaas.predict({"model": "vk", "values": [values] * 10})).code == 200
