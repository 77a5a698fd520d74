"""The graph view: Netron's web viewer, served from the installed ``netron`` package.

The viewer is the package's own ``index.html`` and scripts; only the page is changed on
its way out (never the files on disk), so that it runs under a Jupyter server that may
be years older than the viewer's build and sends nothing anywhere else:

- its build date (``<meta name="date">``) is dropped: Netron then takes "now" as its
  date, so its "please update" lock (after 180 days) never triggers;
- its version (``<meta name="version">``) is dropped: a viewer that is not a packaged
  release sends no analytics and no error reports;
- the model is named by ``<meta name="file">`` (a URL of this server) and
  ``<meta name="identifier">`` (a file name Netron knows the format by).

The remaining outside call, the cookie-consent look-up, is skipped by the ``consent``
cookie the page handler sets (:data:`CONSENT_COOKIE`), and the page's
Content-Security-Policy (:data:`CONTENT_SECURITY_POLICY`) lets it reach this server only.
"""

from __future__ import annotations

import importlib.util
import mimetypes
import re
from html import escape
from pathlib import Path

from .errors import NotFound, TFaaSError
from .modelfiles import GRAPHDEF, KERAS, ONNX, SAVEDMODEL, ModelVersion

#: The cookie Netron checks before asking for consent (its name is Netron's).
CONSENT_COOKIE = "consent"
#: What the viewer page may load and reach: this server, and the blobs it makes itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-src 'none'; object-src 'none'; base-uri 'self'; form-action 'none'"
)
#: A file of the viewer: a plain name in its folder, as the page and scripts ask.
ASSET_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,120}"
_ASSET_RE = re.compile(ASSET_PATTERN)
_META_RE = re.compile(r'<meta\s+name="(date|version)"[^>]*>\s*', re.IGNORECASE)
#: The install hint of the extra that brings the viewer.
INSTALL_HINT = "the graph view needs netron: pip install 'tfaas-jupyter[graph]'"


class ViewerMissing(TFaaSError):
    status = 501


def viewer_dir() -> Path:
    """The folder of the installed ``netron`` package (its web viewer), found without
    importing it; :class:`ViewerMissing` when it is not installed."""
    spec = importlib.util.find_spec("netron")
    if spec is None or spec.origin is None:
        raise ViewerMissing(INSTALL_HINT)
    folder = Path(spec.origin).parent
    if not (folder / "index.html").is_file():
        raise ViewerMissing(f"netron at {folder} has no index.html; {INSTALL_HINT}")
    return folder


def viewer_page(file_url: str | None = None, identifier: str | None = None,
                theme_links: str = "") -> str:
    """Netron's ``index.html`` as served: without its date and version, naming the model
    ``file_url`` (format told by ``identifier``) when given, and with ``theme_links``
    (stylesheets of the Lab theme, see :mod:`.labtheme`) last in its head, after its
    own styles."""
    html = (viewer_dir() / "index.html").read_text(encoding="utf-8")
    html = _META_RE.sub("", html)
    extra = ""
    if file_url:
        extra += f'<meta name="file" content="{escape(file_url)}">\n'
        if identifier:
            extra += f'<meta name="identifier" content="{escape(identifier)}">\n'
    html = html.replace("<title>", f"{extra}<title>", 1)
    return html.replace("</head>", f"{theme_links}</head>", 1)


def viewer_asset(name: str) -> tuple[Path, str]:
    """The path and content type of one file of the viewer (a plain name in its folder)."""
    if not _ASSET_RE.fullmatch(name) or name == "index.html":
        raise NotFound(f"no viewer file {name!r}")
    path = viewer_dir() / name
    if not path.is_file():
        raise NotFound(f"no viewer file {name!r}")
    if name.endswith(".js"):
        kind = "text/javascript; charset=utf-8"  # module scripts need a JavaScript type
    else:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return path, kind


def model_file(mv: ModelVersion) -> tuple[Path, str]:
    """The one file of a model version that holds its graph, and the name that tells
    Netron its format: ``saved_model.pb``, the ``.keras``, the frozen ``.pb``, the ``.onnx``."""
    path = mv.model_path
    if mv.format == SAVEDMODEL:
        path = path / "saved_model.pb"
        return path, "saved_model.pb"
    if mv.format in (KERAS, GRAPHDEF, ONNX):
        return path, path.name
    raise NotFound(f"model {mv.name!r} version {mv.version} has no graph file")


#: The endings of model files in a folder the file browser shows, and how a SavedModel
#: folder is recognised: a ``saved_model.pb`` inside.
GRAPH_FILE_ENDINGS = (".keras", ".h5", ".onnx", ".pb")


def graph_file_in(path: Path) -> Path:
    """The graph file of a file or SavedModel folder on the server's disk."""
    if path.is_dir():
        inner = path / "saved_model.pb"
        if inner.is_file():
            return inner
        raise NotFound(f"{path.name!r} is a folder without saved_model.pb")
    if path.is_file() and path.name.lower().endswith(GRAPH_FILE_ENDINGS):
        return path
    raise NotFound(f"{path.name!r} is not a model file ({', '.join(GRAPH_FILE_ENDINGS)})")
