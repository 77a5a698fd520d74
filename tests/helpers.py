"""Helpers the tests share (import them from here, not from conftest)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families

from tfaas_jupyter.client.forms import encode_multipart

ROOT = Path(__file__).resolve().parents[1]

#: One sample of a metrics page: its labels and its value.
Sample = tuple[dict[str, str], float]


def scrape(text: str) -> dict[str, list[Sample]]:
    """A metrics page as a Prometheus scraper reads it (prometheus_client's parser):
    sample name -> (labels, value) pairs. Each family is declared once."""
    assert text.endswith("\n")
    samples: dict[str, list[Sample]] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family {family.name} declared twice"
        families.add(family.name)
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def metric_families(text: str) -> dict[str, tuple[str, list[str]]]:
    """family name -> (type, label names apart from ``le``) of a metrics page."""
    return {family.name: (family.type,
                          sorted({k for s in family.samples for k in s.labels} - {"le"}))
            for family in text_string_to_metric_families(text)}


def metric_value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    found = [v for lab, v in samples.get(name, [])
             if all(lab.get(k) == w for k, w in labels.items())]
    assert found, (name, labels, samples.get(name))
    return sum(found)


@dataclass
class Reply:
    code: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class TFaaSCaller:
    """Calls ``{base_url}tfaas/...`` of the test server with the token, errors included."""

    fetch: Any

    async def call(self, method: str, path: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        parts = ["tfaas", *[p for p in path.split("/") if p]] if path else ["tfaas", ""]
        if path.endswith("/") and path.strip("/"):
            parts[-1] += "/"  # a route with its trailing slash (the graph page's)
        response = await self.fetch(
            *parts, method=method, body=body, headers=headers or {},
            raise_error=False, allow_nonstandard_methods=True, **{"request_timeout": 180, **kwargs},
        )
        return Reply(response.code, response.headers, response.body)

    async def upload(self, name: str | None, model: bytes, *, params: dict | None = None,
                     labels: str | None = None, filename: str = "model.pb",
                     headers: dict[str, str] | None = None) -> Reply:
        fields = {"name": name} if name is not None else {}
        files = {"model": (filename, model, "application/octet-stream")}
        if params is not None:
            files["params"] = ("params.json", json.dumps(params).encode(), "application/json")
        if labels is not None:
            files["labels"] = ("labels.txt", labels.encode(), "text/plain")
        body, ctype = encode_multipart(fields, files)
        return await self.call("POST", "upload", body,
                               {"Content-Type": ctype, **(headers or {})})

    async def upload_dir(self, directory: Path, name: str, **params: object) -> Reply:
        """Upload a folder written by tests/tfmodels.py or the seed script (form style),
        its params.json updated with ``params``."""
        written = json.loads((directory / "params.json").read_text())
        labels = directory / "labels.txt"
        return await self.upload(
            name, (directory / written.get("model", "model.pb")).read_bytes(),
            params={**written, **params, "name": name},
            labels=labels.read_text() if labels.exists() else None,
        )

    async def uploaded(self, reply: Reply | None = None, **kwargs: Any) -> int:
        """The version an upload created, asserting it succeeded: of ``reply``, or of
        ``upload_dir(**kwargs)``."""
        if reply is None:
            reply = await self.upload_dir(**kwargs)
        assert reply.code == 200, reply.body
        return int(reply.json()["version"])

    async def predict(self, doc: dict) -> Reply:
        return await self.call("POST", "json", json.dumps(doc).encode())


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call (the Python client's) in a thread: the test server runs in
    the test's own event loop, which a blocking call would deadlock."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def load_example(name: str):
    """Import a script from examples/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_predict(values: Any) -> Any:
    """What the seed model 'vk' answers for ``values`` (one row or a list of rows), as
    JSON would carry it, computed by the seed script's numpy forward pass (no TensorFlow)."""
    import numpy as np

    rows = np.asarray(values, dtype=np.float32)
    out = load_example("make_seed_model").predict(rows.reshape(-1, rows.shape[-1]))
    return out[0].tolist() if rows.ndim == 1 else out.tolist()


def seed_upload_body(seed_dir: Path) -> tuple[bytes, str]:
    """The talk's curl upload of 'vk' as a multipart body: (body, content type)."""
    return encode_multipart(
        {"name": "vk"},
        {
            "params": ("params.json", (seed_dir / "params.json").read_bytes(), "application/json"),
            "model": ("model.pb", (seed_dir / "model.pb").read_bytes(), "application/octet-stream"),
            "labels": ("labels.txt", (seed_dir / "labels.txt").read_bytes(), "text/plain"),
        },
    )


def check_answer_schema(doc: Any, path: str, method: str = "get") -> None:
    """``doc`` is valid against the 200 JSON answer openapi.json gives for ``path``."""
    from jsonschema import Draft202012Validator
    from tfaas_jupyter.handlers.openapi import load_spec

    spec = load_spec()
    schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
    validator = Draft202012Validator({**schema["schema"], "components": spec["components"]})
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, f"{path}: {errors[0].message} at {list(errors[0].path)}"
