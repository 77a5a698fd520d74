"""Every prediction answer says where its time went, in a standard ``Server-Timing`` header."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from helpers import Reply, TFaaSCaller

from tfaas_jupyter import tfaas_pb2

pytestmark = pytest.mark.timeout(600)

STAGES = ("decode", "queue", "worker", "model", "encode")
_ENTRY = re.compile(r"^([\w-]+);dur=([0-9.]+)(;desc=\"[^\"]*\")?$")


def stages(reply: Reply) -> dict[str, float]:
    """The stage entries of a reply's Server-Timing header(s), in milliseconds."""
    found: dict[str, float] = {}
    for header in reply.headers.get_list("Server-Timing"):
        for entry in header.split(","):
            match = _ENTRY.match(entry.strip())
            assert match, f"not a Server-Timing entry: {entry!r}"
            found[match.group(1)] = float(match.group(2))
    return found


async def timed(tfaas: TFaaSCaller, path: str, body: bytes) -> tuple[Reply, float]:
    began = time.perf_counter()
    reply = await tfaas.call("POST", path, body)
    return reply, (time.perf_counter() - began) * 1000


async def test_each_prediction_route_reports_its_stages(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    doc = json.loads((seed_dir / "input.json").read_text())
    meta = (await tfaas.call("GET", "v2/models/vk")).json()
    v2_input = meta["inputs"][0]
    requests = {
        "json": json.dumps(doc).encode(),
        "proto": tfaas_pb2.Row(key=doc["keys"], value=doc["values"],
                               model="vk").SerializeToString(),
        "v2/models/vk/infer": json.dumps({"inputs": [{
            "name": v2_input["name"], "shape": [1, len(doc["values"])],
            "datatype": v2_input["datatype"], "data": doc["values"],
        }]}).encode(),
        "v1/models/vk:predict": json.dumps({"instances": [doc["values"]]}).encode(),
    }
    await tfaas.call("POST", "json", requests["json"])  # the model's first call is no cold start
    for path, body in requests.items():
        reply, wall_ms = await timed(tfaas, path, body)
        assert reply.code == 200, (path, reply.body)
        got = stages(reply)
        assert set(STAGES) <= set(got), (path, got)
        assert "cold-start" not in got
        assert all(got[name] >= 0 for name in STAGES), (path, got)
        # the model runs inside the worker's round trip; the other stages follow each other
        assert got["model"] <= got["worker"], (path, got)
        assert got["worker"] > 0 and got["model"] > 0, (path, got)
        spent = sum(got[name] for name in ("decode", "queue", "worker", "encode"))
        assert spent <= wall_ms, (path, got, wall_ms)


async def test_errors_and_other_routes_carry_no_stages(
    tfaas: TFaaSCaller, seed_dir: Path
) -> None:
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    reply = await tfaas.call("POST", "json", b'{"model": "vk", "values": "nope"}')
    assert reply.code == 400
    assert not stages(reply)
    reply = await tfaas.call("GET", "status")
    assert reply.code == 200
    assert not stages(reply)
