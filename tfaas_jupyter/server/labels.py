"""Version labels (TF Serving's ``version_labels``, the seed talk's "tagging").

``PUT models/NAME/labels/LABEL {"version": N}`` sets or moves a label (a rollback is
moving it back), ``DELETE`` removes it. The version is loaded and warmed in the model
worker before the label is written, so no request routed through the label waits for
a load or meets a version that cannot run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from .errors import BadRequest, TFaaSError
from .keys import Grant, check_model_access
from .names import check_label, check_model_name, check_version
from .service import TFaaS


def _requested_version(body: bytes) -> int:
    try:
        doc = orjson.loads(body or b"null")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise BadRequest('the body must be {"version": N}: the version the label points at')
    number = check_version(doc["version"])
    if number is None:
        raise BadRequest("'version' must be a version number")
    return number


def get_label(service: TFaaS, name: str, label: str,
              grant: Grant | None = None) -> dict[str, Any]:
    mv = service.resolve(name, check_label(label), grant=grant)
    return {"name": mv.name, "label": label, "version": mv.version}


async def set_label(service: TFaaS, name: str, label: str, body: bytes,
                    grant: Grant | None = None) -> dict[str, Any]:
    label = check_label(label)
    number = _requested_version(body)
    mv = service.resolve(name, number, grant=grant)  # the name's check
    name = mv.name
    try:  # loaded and warmed before any request can reach it through the label
        await service.worker.load(mv.ref)
    except TFaaSError as exc:
        raise TFaaSError(f"version {number} of {name!r} cannot be loaded: {exc.message}",
                         exc.status) from None
    labels = await asyncio.to_thread(service.repository.set_label, name, label, number)
    return {"name": name, "version_labels": labels}


async def delete_label(service: TFaaS, name: str, label: str,
                       grant: Grant | None = None) -> dict[str, Any]:
    name, label = check_model_name(name), check_label(label)
    check_model_access(grant, name)
    labels = await asyncio.to_thread(service.repository.delete_label, name, label)
    return {"name": name, "version_labels": labels}
