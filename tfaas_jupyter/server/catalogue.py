"""The model catalogue: what is served (models, their params and versions), the
default model, deletion, and the server's status. A service of its own beside the
prediction core (:class:`~tfaas_jupyter.server.service.TFaaS`), which it reads."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, Sequence

from .. import __version__
from .devices import devices_status
from .errors import BadRequest, NotFound
from .keys import Grant, check_model_access, may_see_model
from .modelfiles import ModelVersion
from .names import check_model_name, check_version
from .service import TFaaS
from .sysinfo import machine_status

log = logging.getLogger(__name__)


def describe(mv: ModelVersion, versions: Sequence[ModelVersion] = ()) -> dict[str, Any]:
    """The model as /models lists it: its params.json keys first, then ours."""
    doc = dict(mv.params)
    doc.setdefault("name", mv.name)
    doc["version"] = mv.version
    doc["versions"] = [v.version for v in versions] or [mv.version]
    doc["format"] = mv.format
    doc["created"] = mv.meta.get("created")
    doc["timestamp"] = doc.get("timestamp") or mv.meta.get("created")
    doc["inputs"] = (mv.signature or {}).get("inputs")
    doc["outputs"] = (mv.signature or {}).get("outputs")
    doc["label_names"] = mv.labels
    if mv.load_error is not None:  # its predictions answer 409 with this reason
        doc["load_error"] = mv.load_error
    return doc


class Catalogue:
    """Models, params, the default model, deletion and status, over ``core``."""

    def __init__(self, core: TFaaS) -> None:
        self.core = core
        self.repository = core.repository

    def models(self, grant: Grant | None = None) -> list[dict[str, Any]]:
        """Every model ``grant`` may see (None: a Jupyter login, all)."""
        result = []
        for name in self.repository.names():
            if not may_see_model(grant, name):
                continue
            try:
                versions = self.repository.versions(name)
            except NotFound:
                continue
            doc = describe(versions[-1], versions)
            doc["version_labels"] = self.repository.labels(name)
            result.append(doc)
        return result

    def model_detail(self, name: str, grant: Grant | None = None) -> dict[str, Any]:
        check_model_access(grant, check_model_name(name))
        versions = self.repository.versions(name)
        doc = describe(versions[-1], versions)
        doc["version_details"] = [v.describe() for v in versions]
        doc["version_labels"] = self.repository.labels(name)
        return doc

    def params(self, name: str | None, version: Any = None,
               grant: Grant | None = None) -> dict[str, Any]:
        return dict(self.core.resolve(name, version, grant=grant).params)

    def set_default(self, params: dict[str, Any], grant: Grant | None = None) -> str:
        """The original's POST /params: make a model the default for requests naming none."""
        name = params.get("name") if isinstance(params, dict) else None
        mv = self.core.resolve(name if isinstance(name, str) else None, grant=grant)
        self.core.default_model = mv.name
        return mv.name

    async def delete(self, name: str | None, version: Any = None,
                     grant: Grant | None = None) -> dict[str, Any]:
        if not name:
            raise BadRequest("no model name is provided")
        name = check_model_name(name)
        check_model_access(grant, name)
        number = check_version(version)
        # the worker's cache key of a version, read before the version is gone
        prefix = f"{name}@" if number is None else self.repository.get(name, number).key
        deleted = await asyncio.to_thread(self.repository.delete_unlabelled, name, number)
        try:
            await self.core.worker.unload(prefix)
            if number is None:
                self.core.stats.forget(name)
                if self.core.default_model == name:
                    self.core.default_model = None
        except Exception as exc:  # the model is gone from disk; a dead worker holds nothing
            log.info("tfaas: unload of %s after delete failed: %s", name, exc)
        return {"name": name, "deleted_versions": deleted}

    def versions_loaded(self, keys: list[str]) -> list[dict[str, Any]]:
        """Each model version in the worker's cache as ``{"name", "version"}``: a cache
        key names a version's content (``name@uid``), not its number, so two loaded
        versions of one model differ only here. A version gone from disk since is
        listed with ``version`` None."""
        numbers: dict[str, dict[str, int]] = {}
        shown = []
        for key in keys:
            name = key.split("@", 1)[0]
            if name not in numbers:
                try:
                    numbers[name] = {v.key: v.version for v in self.repository.versions(name)}
                except NotFound:
                    numbers[name] = {}
            shown.append({"name": name, "version": numbers[name].get(key)})
        return shown

    async def status(self) -> dict[str, Any]:
        core = self.core
        stats = core.stats
        doc: dict[str, Any] = machine_status()
        doc.update(
            {
                "NGo": len(asyncio.all_tasks()),
                "Uptime": stats.uptime,
                "getRequests": stats.by_method.get("GET", 0),
                "postRequests": stats.by_method.get("POST", 0),
                "deleteRequests": stats.by_method.get("DELETE", 0),
                "errors": stats.errors,
                "version": __version__,
                "python": sys.version.split()[0],
                "model_dir": str(self.repository.root),
                "models_on_disk": self.repository.names(),
                "default_model": core.default_model,
                "models": {k: v.as_dict() for k, v in sorted(stats.models.items())},
                "endpoints": dict(sorted(stats.by_endpoint.items())),
            }
        )
        try:  # never starts the worker: a status query is no use of it
            worker = await asyncio.wait_for(core.worker.status(), timeout=30)
        except Exception as exc:
            worker = {"state": "unavailable", "summary": "unavailable",
                      "error": getattr(exc, "message", str(exc))}
        doc["worker"] = worker
        doc["tensorflow"] = worker.get("tensorflow")
        loaded = worker.get("loaded") or []
        doc["models_loaded"] = [key.split("@", 1)[0] for key in loaded]
        doc["versions_loaded"] = self.versions_loaded(loaded)
        doc["cache"] = {"size": len(loaded), "capacity": worker.get("cache_size")}
        doc["batching"] = core.runner.status()
        doc["devices"] = devices_status(worker, core.worker.gpu)
        doc["capture"] = core.capture.status() if core.capture is not None else None
        return doc
