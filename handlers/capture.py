"""GET capture/NAME[?since=T&until=T]: the captured predictions of a model, as one
Parquet file; ``since`` and ``until`` (ISO 8601, UTC unless the time says otherwise)
keep those from ``since`` on and before ``until``."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from jupyter_server.auth.decorator import authorized
from tornado import web

from tfaas_jupyter.server import keys
from tfaas_jupyter.server.errors import BadRequest, NotFound
from tfaas_jupyter.server.keys import check_model_access
from tfaas_jupyter.server.names import check_model_name

from .base import TFaaSHandler


class CaptureHandler(TFaaSHandler):
    """What ``%tfaas capture NAME`` reads back (``TFaaSApp.capture_dir``)."""

    endpoint = "capture"
    key_scope = keys.MANAGE

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        name = check_model_name(name)
        check_model_access(self._grant, name)
        self._model_name = name
        capture = self.service.capture
        if capture is None:
            raise NotFound("capture is off (TFaaSApp.capture_dir is not set)")
        since, until = (self._time_argument(which) for which in ("since", "until"))
        if since is not None and until is not None and since >= until:
            raise BadRequest(f"'since' ({since.isoformat()}) is not before 'until' "
                             f"({until.isoformat()})")
        await asyncio.to_thread(capture.flush)
        data = await asyncio.to_thread(capture.read, name, since, until)
        self.set_header("Content-Type", "application/vnd.apache.parquet")
        self.set_header("Content-Disposition", f'attachment; filename="{name}-capture.parquet"')
        self.finish(data)

    def _time_argument(self, which: str) -> datetime | None:
        """The query argument ``which`` as an aware datetime (UTC when it names no
        zone), None when absent."""
        text = self.get_query_argument(which, None)
        if text is None or not text.strip():
            return None
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadRequest(f"{which!r} is not an ISO 8601 time: {text[:60]!r} (e.g. "
                             "2026-12-08T09:00 or 2026-12-08T09:00:00+01:00)") from None
        return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
