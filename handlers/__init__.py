"""The HTTP layer of tfaas-jupyter: thin Tornado handlers over :mod:`tfaas_jupyter.server.service`.

Installed as ``tfaas_jupyter.handlers``. :func:`routes` is the one route table;
every route is relative to ``{base_url}`` (the ExtensionApp prefixes it).
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join
from tornado.httputil import HTTPServerRequest
from tornado.routing import PathMatches, Rule

from tfaas_jupyter.server.graphview import ASSET_PATTERN
from tfaas_jupyter.server.keys import KEY_NAME_PATTERN
from tfaas_jupyter.server.names import MODEL_NAME_PATTERN
from tfaas_jupyter.server.protocols.v2stream import worth_streaming
from tfaas_jupyter.server.shm import REGION_NAME

from .base import UnknownEndpointHandler
from .capture import CaptureHandler
from .explorer import ExplorerPageHandler
from .export import ExportHandler
from .graph import GraphAssetHandler, GraphPageHandler, ModelFileHandler
from .index import IndexHandler
from .keys import KeyHandler, KeysHandler
from .labels import LabelHandler
from .metrics import MetricsHandler
from .models import DeleteHandler, ModelHandler, ModelsHandler, ParamsHandler
from .openapi import ModelOpenAPIHandler, OpenAPIHandler
from .predict import ImageHandler, JsonHandler, ProtoHandler
from .shm import (
    SharedMemoryRegisterHandler,
    SharedMemoryStatusHandler,
    SharedMemoryUnregisterHandler,
)
from .status import StatusHandler
from .tfserving import (
    TFServingMetadataHandler,
    TFServingPredictHandler,
    TFServingStatusHandler,
)
from .upload import ContentsUploadHandler, UploadHandler
from .v2 import (
    V2HealthHandler,
    V2InferHandler,
    V2ModelConfigHandler,
    V2ModelMetadataHandler,
    V2ModelReadyHandler,
    V2ServerMetadataHandler,
    V2StreamedInferHandler,
)

_NAME = f"(?P<name>{MODEL_NAME_PATTERN})"
_VERSION = r"(?P<version>[0-9]{1,9})"
#: A version number or a version label, where the standard protocols take one.
_VERSION_OR_LABEL = r"(?P<version>[A-Za-z0-9_][A-Za-z0-9_\-]{0,99})"
_V2_MODEL = f"/v2/models/{_NAME}"
_V2_VERSION = f"{_V2_MODEL}/versions/{_VERSION_OR_LABEL}"
_SHM_REGION = f"/v2/systemsharedmemory/region/(?P<region>{REGION_NAME.pattern})"
_LABEL = r"(?P<label>[A-Za-z0-9_][A-Za-z0-9_\-]{0,99})"
#: TF Serving's model paths: the latest version, a version number, a version label
_TFS_MODELS = (
    f"/v1/models/{_NAME}",
    f"/v1/models/{_NAME}/versions/{_VERSION}",
    f"/v1/models/{_NAME}/labels/{_LABEL}",
)
#: The key of a key-bearing URL (checked by the handler, never logged).
_KEY = r"(?P<tfaas_key>[^/]+)"


def _api_table() -> list[tuple[str, type]]:
    """The API endpoints (relative patterns), served both as they are and under a key URL."""
    return [
        (r"/json", JsonHandler),
        (r"/predict/json", JsonHandler),
        (r"/proto", ProtoHandler),
        (r"/predict/proto", ProtoHandler),
        (r"/image", ImageHandler),
        (r"/predict/image", ImageHandler),
        (r"/upload", UploadHandler),
        (r"/delete", DeleteHandler),
        (rf"/delete/{_NAME}", DeleteHandler),
        (rf"/delete/{_NAME}/{_VERSION}", DeleteHandler),
        (r"/models", ModelsHandler),
        (rf"/models/{_NAME}", ModelHandler),
        (rf"/models/{_NAME}/labels/{_LABEL}", LabelHandler),
        (rf"/models/{_NAME}/openapi\.json", ModelOpenAPIHandler),
        (rf"/models/{_NAME}/versions/{_VERSION}/openapi\.json", ModelOpenAPIHandler),
        (rf"/models/{_NAME}/file", ModelFileHandler),
        (rf"/models/{_NAME}/versions/{_VERSION}/file", ModelFileHandler),
        (r"/params", ParamsHandler),
        (rf"/params/{_NAME}", ParamsHandler),
        (rf"/params/{_NAME}/{_VERSION}", ParamsHandler),
        (r"/status", StatusHandler),
        (rf"/capture/{_NAME}", CaptureHandler),
        (r"/metrics", MetricsHandler),
        (r"/openapi\.json", OpenAPIHandler),
        (r"/export", ExportHandler),
        # Open Inference Protocol (KServe V2)
        (r"/v2", V2ServerMetadataHandler),
        (r"/v2/health/live", V2HealthHandler),
        (r"/v2/health/ready", V2HealthHandler),
        (_V2_MODEL, V2ModelMetadataHandler),
        (_V2_VERSION, V2ModelMetadataHandler),
        (rf"{_V2_MODEL}/ready", V2ModelReadyHandler),
        (rf"{_V2_VERSION}/ready", V2ModelReadyHandler),
        (rf"{_V2_MODEL}/config", V2ModelConfigHandler),
        (rf"{_V2_VERSION}/config", V2ModelConfigHandler),
        (rf"{_V2_MODEL}/infer", V2InferHandler),
        (rf"{_V2_VERSION}/infer", V2InferHandler),
        # Triton's system shared memory extension
        (r"/v2/systemsharedmemory/status", SharedMemoryStatusHandler),
        (rf"{_SHM_REGION}/status", SharedMemoryStatusHandler),
        (rf"{_SHM_REGION}/register", SharedMemoryRegisterHandler),
        (rf"{_SHM_REGION}/unregister", SharedMemoryUnregisterHandler),
        (r"/v2/systemsharedmemory/unregister", SharedMemoryUnregisterHandler),
        # TensorFlow Serving REST
        *[(path, TFServingStatusHandler) for path in _TFS_MODELS],
        *[(f"{path}/metadata", TFServingMetadataHandler) for path in _TFS_MODELS],
        # ":predict", or "%3Apredict" from clients that percent-encode the colon
        *[(f"{path}(?::|%3[Aa])predict", TFServingPredictHandler) for path in _TFS_MODELS],
    ]


def _login_only_table() -> list[tuple[str, type]]:
    """The routes for a Jupyter login only: a TFaaS key gets 403 there, header or URL."""
    return [
        (r"/?", IndexHandler),
        # the graph view: Netron's page (the trailing slash: its files are relative)
        (r"/graph/", GraphPageHandler),
        # the API explorer (Swagger UI) for the tfaas/ page and the notebook widget
        (r"/explorer/", ExplorerPageHandler),
        (r"/keys", KeysHandler),
        # the file browser's "Serve with TFaaS": a file of the server's own contents
        (r"/upload/contents", ContentsUploadHandler),
        (rf"/keys/(?P<key_name>{KEY_NAME_PATTERN})", KeyHandler),
    ]


def routes(prefix: str = "tfaas") -> list[tuple[str, type]]:
    """The route table: (pattern, handler) pairs under ``prefix``."""
    table = [
        *_login_only_table(),
        (rf"/graph/(?P<asset>{ASSET_PATTERN})", GraphAssetHandler),
        *_api_table(),
    ]
    return [(f"/{prefix}{pattern}", handler) for pattern, handler in table]


def key_url_routes(prefix: str = "tfaas") -> list[tuple[str, type]]:
    """Every API endpoint again under ``key/<KEY>/``, for tools that only take a base URL:
    the key there counts exactly as in an ``Authorization`` header (scopes, models); the
    routes for a Jupyter login only are there too, to refuse the key (403, not 404)."""
    return [(f"/{prefix}/key/{_KEY}{pattern}", handler)
            for pattern, handler in [*_api_table(), *_login_only_table()]]


class _StreamedBody(PathMatches):
    """A path that matches only big binary V2 requests (by their headers)."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        # the path first: every request to the server passes here, few are inferences
        found = super().match(request)
        return found if found is not None and worth_streaming(request.headers) else None


def streamed_rules(base_url: str, prefix: str = "tfaas", **kwargs: Any) -> list[Rule]:
    """Routing rules sending big binary V2 infer requests to the streaming handler.

    A handler streams its body or not by its class, and a route picks a class by its
    path alone, so these rules also look at the headers; they must come before
    :func:`routes` (whose :class:`~.v2.V2InferHandler` takes all other requests).
    ``kwargs`` are the handler's (the extension's ``name``)."""
    patterns = [rf"{_V2_MODEL}/infer", rf"{_V2_VERSION}/infer"]
    paths = [f"/{prefix}{p}" for p in patterns] + [f"/{prefix}/key/{_KEY}{p}" for p in patterns]
    return [Rule(_StreamedBody(url_path_join(base_url, path)), V2StreamedInferHandler, kwargs)
            for path in paths]


def fallback_route(prefix: str = "tfaas") -> tuple[str, type]:
    """Any other path under ``prefix``: a JSON 404 naming it (not Jupyter's HTML page).

    Registered after :func:`routes` (which lists only the real endpoints)."""
    return (rf"/{prefix}/.*", UnknownEndpointHandler)
