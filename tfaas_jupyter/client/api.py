"""A small Python client for tfaas-jupyter (and the original TFaaS API).

Only the standard library, numpy and orjson are needed (protobuf for
:meth:`TFaaSClient.predict_proto`): a machine that asks for predictions needs no
TensorFlow and no ``requests``. Keras/TensorFlow are imported only when a live
Keras model object is uploaded, pandas never (data frames are recognised by
their attributes).

>>> from tfaas_jupyter.client import TFaaSClient
>>> tfaas = TFaaSClient("http://localhost:8888/tfaas", token="...")
>>> tfaas.upload("vk", "seed/model.pb", params="seed/params.json", labels=["signal"])
>>> tfaas.predict("vk", [2.0, 0.0, ...])           # one row  -> 1-D array
>>> tfaas.predict("vk", [[...], [...]])            # rows     -> 2-D array
>>> tfaas.predict("vk", dataframe)                 # columns are the keys -> 2-D array

Connections are kept alive and reused (one per thread at a time), so a loop of
small requests does not pay a TCP handshake each time.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import numpy as np
import orjson

from .. import __version__
from .forms import encode_multipart

__all__ = ["TFaaSClient", "TFaaSClientError", "token_from_env", "normalize_url"]

#: Environment variables a token is taken from, in this order (see :func:`token_from_env`).
TOKEN_ENV_VARS = ("TFAAS_TOKEN", "JUPYTER_TOKEN", "JPY_API_TOKEN", "JUPYTERHUB_API_TOKEN")

PathLike = Union[str, "os.PathLike[str]"]
#: ``progress(sent_bytes, total_bytes)``, called as an upload is sent.
Progress = Callable[[int, int], None]

_CHUNK = 256 * 1024
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
              http.client.CannotSendRequest, http.client.BadStatusLine)


class TFaaSClientError(Exception):
    """A request failed.

    ``status`` is the HTTP status the server answered with, or None when no answer
    came (connection refused, timeout, TLS failure...). ``message`` is the server's
    ``{"error": ...}`` text when it sent one.
    """

    def __init__(self, message: str, status: int | None = None, body: bytes | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})" if self.status else self.message


def token_from_env(environ: dict[str, str] | None = None, url: str | None = None
                   ) -> str | None:
    """The first token set among TFAAS_TOKEN, JUPYTER_TOKEN, JPY_API_TOKEN and
    JUPYTERHUB_API_TOKEN (the last two are set inside JupyterHub servers).

    Given the ``url`` it is for, Jupyter's and the hub's own tokens are answered only
    for a loopback address or the hub's own host: a token of the account is never
    sent to any other server. ``TFAAS_TOKEN`` is the user's explicit choice.
    """
    env = os.environ if environ is None else environ
    for var in TOKEN_ENV_VARS:
        if env.get(var):
            if url is not None and var != "TFAAS_TOKEN" and not _own_host(url, env):
                continue
            return env[var]
    return None


def _own_host(url: str, env: Mapping[str, str]) -> bool:
    """Whether ``url`` is this machine's loopback or the JupyterHub's own server."""
    host = urllib.parse.urlsplit(url if "://" in url else "http://" + url).hostname or ""
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    for var in ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_URL", "JUPYTERHUB_BASE_URL"):
        hub = urllib.parse.urlsplit(env.get(var) or "").hostname
        if hub and hub == host:
            return True
    return False


#: A TFaaS key (``tfk_...``), wherever it appears (a key-bearing URL): hidden in reprs.
_KEY_RE = re.compile(r"tfk_[A-Za-z0-9_\-]+")
#: A key-bearing base URL's path ends with this: it is a tfaas base as it is.
_KEY_URL_END = re.compile(r"/tfaas/key/[^/]+$")


def redact_key(text: str) -> str:
    """``text`` with any TFaaS key replaced by ``[secret]`` (for reprs and messages)."""
    return _KEY_RE.sub("[secret]", text)


def normalize_url(url: str) -> tuple[str, str | None]:
    """Answer (tfaas base URL ending in ``/``, token found in its query or None).

    ``http://h:8888/user/x/tfaas``, ``.../tfaas/`` and the Jupyter server's own URL
    ``http://h:8888/user/x/`` all give ``http://h:8888/user/x/tfaas/``; a
    ``?token=...`` (as Jupyter prints its URL) is taken out and answered.
    """
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    query = urllib.parse.parse_qs(parts.query)
    token = query.get("token", [None])[0]
    path = parts.path.rstrip("/")
    # The Jupyter URL may point at a page (…/lab, …/tree): the tfaas base is beside it.
    if not path.endswith("/tfaas") and path != "tfaas" and not _KEY_URL_END.search(path):
        for page in ("/lab", "/tree", "/notebooks"):
            if path.endswith(page):
                path = path[: -len(page)]
                break
        path += "/tfaas"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path + "/", "", "")), token


def _default_user_agent() -> str:
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"tfaas-jupyter/{__version__} python/{python}"


# ----------------------------------------------------------------------------- the client


class TFaaSClient:
    """Talks to one TFaaS server.

    ``url`` is the tfaas base (``http://host:8888/user/x/tfaas``, with or without the
    trailing slash) or the Jupyter server's URL (``tfaas/`` is appended). ``token`` is
    the Jupyter token, sent as ``Authorization: token ...``; None sends none, unless the
    URL carries ``?token=``. ``ssl_context`` configures HTTPS (client certificates,
    CA path); the default verifies the server against the system's CAs.

    Every method raises :class:`TFaaSClientError` when the server answers with an
    error (``.status`` and ``.message`` are the server's) or cannot be reached
    (``.status`` is None). The client is thread-safe; use it as a context manager or
    call :meth:`close` to drop its idle connections.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 120.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.url, url_token = normalize_url(url)
        self.token = token or url_token
        self.timeout = timeout
        self.user_agent = user_agent or _default_user_agent()
        self.verbose = verbose
        parts = urllib.parse.urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._base_path = parts.path
        self._ssl_context = ssl_context
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TFaaSClient({redact_key(self.url)!r})"

    def __enter__(self) -> TFaaSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle kept-alive connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- HTTP ----------------------------------------------------------------

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._https:
            context = self._ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new_connection(), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < 8:
                self._idle.append(conn)
                return
        conn.close()

    def endpoint(self, path: str) -> str:
        """The full URL of an endpoint path such as ``models`` or ``params/vk``."""
        return self.url + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request to ``{url}{path}``; answer (status, headers, body) of a
        2xx reply, raise :class:`TFaaSClientError` for anything else."""
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            all_headers["Authorization"] = f"token {self.token}"
        all_headers.update(headers or {})
        target = self._base_path + path.lstrip("/")
        started = time.perf_counter()
        for attempt in (1, 2):
            conn, reused = self._take()
            try:
                if body is None:
                    conn.request(method, target, headers=all_headers)
                elif progress is None:
                    conn.request(method, target, body=body, headers=all_headers)
                else:
                    all_headers["Content-Length"] = str(len(body))
                    conn.request(method, target, body=_chunks(body, progress),
                                 headers=all_headers)
                response = conn.getresponse()
                data = response.read()
            except _RETRYABLE as exc:
                conn.close()
                # A kept-alive connection the server closed meanwhile: try a fresh one.
                if reused and attempt == 1:
                    continue
                raise self._connection_error(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self._connection_error(exc) from None
            if response.will_close:
                conn.close()
            else:
                self._give_back(conn)
            break
        status = response.status
        reply_headers = {k.lower(): v for k, v in response.getheaders()}
        if self.verbose:
            print(f"tfaas: {method} {redact_key(self.endpoint(path))} -> {status} "
                  f"({len(data)} bytes, {time.perf_counter() - started:.3f}s)", file=sys.stderr)
        if 200 <= status < 300:
            return status, reply_headers, data
        raise self._http_error(status, reply_headers, data)

    def _connection_error(self, exc: BaseException) -> TFaaSClientError:
        where = f"{'https' if self._https else 'http'}://{self._host}:{self._port}"
        if isinstance(exc, (socket.timeout, TimeoutError)):
            text = f"no answer from {where} within {self.timeout:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            text = f"cannot connect to {where}: connection refused (is the server running?)"
        elif isinstance(exc, socket.gaierror):
            text = f"cannot resolve host {self._host!r}: {exc.strerror or exc}"
        elif isinstance(exc, ssl.SSLError):
            text = f"TLS error talking to {where}: {exc}"
        else:
            text = f"cannot talk to {where}: {exc or type(exc).__name__}"
        return TFaaSClientError(text, None)

    @staticmethod
    def _http_error(status: int, headers: dict[str, str], data: bytes) -> TFaaSClientError:
        message = None
        try:
            doc = orjson.loads(data)
            if isinstance(doc, dict):
                message = doc.get("error") or doc.get("message") or doc.get("reason")
        except orjson.JSONDecodeError:
            pass
        if not message:
            if 300 <= status < 400:
                message = f"redirected to {headers.get('location', '?')}"
                if "login" in headers.get("location", ""):
                    message += " (not authenticated: give the Jupyter token)"
            elif status == 403:
                message = "forbidden (not authenticated: give the Jupyter token)"
            elif "html" in headers.get("content-type", "") or data.lstrip()[:1] == b"<":
                message = http.client.responses.get(status, "HTTP error")
                if status == 404:
                    message += " (is the URL the tfaas base, e.g. http://host:8888/tfaas/?)"
            else:
                text = data.decode("utf-8", errors="replace").strip()
                message = text[:300] or http.client.responses.get(status, "HTTP error")
        return TFaaSClientError(str(message), status, data)

    def _json(self, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None, progress: Progress | None = None) -> Any:
        _, _, data = self.request(method, path, body, headers, progress=progress)
        if not data.strip():
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise TFaaSClientError(
                f"the server's answer to {path} is not JSON: {data[:200]!r}", None, data
            ) from None

    # -- models ----------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Every model: its params.json keys plus version(s), format, inputs, outputs."""
        return self._json("GET", "models") or []

    def model(self, name: str) -> dict[str, Any]:
        """One model with all its versions."""
        return self._json("GET", f"models/{_quote(name)}")

    def params(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The params.json of a model (its latest version, or ``version``)."""
        path = f"params/{_quote(name)}" + (f"/{int(version)}" if version is not None else "")
        return self._json("GET", path)

    def set_default(self, name: str) -> dict[str, Any]:
        """Make ``name`` the model used by requests naming none (the original's POST /params)."""
        return self._json("POST", "params", orjson.dumps({"name": name}),
                          {"Content-Type": "application/json"})

    def delete(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Delete a model (every version), or only one ``version`` of it."""
        path = f"delete/{_quote(name)}" + (f"/{int(version)}" if version is not None else "")
        return self._json("DELETE", path)

    def status(self) -> dict[str, Any]:
        """The server's status: machine figures, worker, TensorFlow, models, counts."""
        return self._json("GET", "status")

    # -- keys (the owner's Jupyter token only) -----------------------------------

    def create_key(self, name: str, models: Sequence[str] | None = None,
                   scopes: Sequence[str] | None = None) -> dict[str, Any]:
        """A new TFaaS key; the answer's ``key`` and ``url`` are shown this once."""
        doc: dict[str, Any] = {"name": name}
        if models:
            doc["models"] = list(models)
        if scopes:
            doc["scopes"] = list(scopes)
        return self._json("POST", "keys", orjson.dumps(doc), {"Content-Type": "application/json"})

    def keys(self) -> list[dict[str, Any]]:
        """Every key's name, models, scopes, created and last-used times (no secret)."""
        return self._json("GET", "keys") or []

    def revoke_key(self, name: str) -> dict[str, Any]:
        """Revoke a key at once."""
        return self._json("DELETE", f"keys/{_quote(name)}")

    # -- upload ----------------------------------------------------------------

    def upload(
        self,
        name: str,
        model: Any,
        params: dict[str, Any] | PathLike | None = None,
        labels: Sequence[str] | PathLike | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload a model as ``name``; answer the stored version's description.

        ``model`` is a file (a frozen graph ``.pb``, a SavedModel ``.tar.gz``/``.zip``,
        a ``.keras`` file), a SavedModel *folder* (packed as .tar.gz here), or a live
        Keras model (exported with ``model.export`` and packed here). ``params`` is a
        dict or a params.json path; ``labels`` a list of labels or a labels.txt path.
        ``progress(sent, total)`` is called as the body goes out.

        The multipart body is built in memory (twice the model's size at most).
        """
        files: dict[str, tuple[str, bytes, str]] = {}
        filename, content = _model_payload(model)
        files["model"] = (filename, content, "application/octet-stream")
        if params is not None:
            if isinstance(params, dict):
                raw_params = json.dumps(params).encode()
            else:
                raw_params = Path(params).expanduser().read_bytes()
            files["params"] = ("params.json", raw_params, "application/json")
        if labels is not None:
            if isinstance(labels, (str, os.PathLike)):
                raw_labels = Path(labels).expanduser().read_bytes()
            else:
                raw_labels = "".join(f"{label}\n" for label in labels).encode()
            files["labels"] = ("labels.txt", raw_labels, "text/plain")
        body, ctype = encode_multipart({"name": name}, files)
        return self._json("POST", "upload", body, {"Content-Type": ctype}, progress)

    def upload_bundle(self, path: PathLike, progress: Progress | None = None) -> dict[str, Any]:
        """Upload the original's bundle: a .tar.gz whose top folder is the model's name."""
        body = Path(path).expanduser().read_bytes()
        headers = {"Content-Type": "application/octet-stream"}
        if body[:2] == b"\x1f\x8b":
            headers["Content-Encoding"] = "gzip"
        return self._json("POST", "upload", body, headers, progress)

    # -- predictions -------------------------------------------------------------

    def predict_raw(self, doc: dict[str, Any]) -> Any:
        """POST a ready ``{"keys", "values", "model"}`` document to /json; answer the JSON."""
        return self._json("POST", "json", orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY),
                          {"Content-Type": "application/json"})

    def predict(
        self,
        name: str | None,
        data: Any,
        keys: Sequence[str] | None = None,
        version: int | None = None,
    ) -> np.ndarray:
        """Predictions of model ``name`` (None: the server's default model) for ``data``.

        ``data`` is one row (a list or 1-D array of numbers, a ``{key: value}`` dict,
        a pandas Series) or many rows (a list of rows, a 2-D array, a
        ``{key: column}`` dict, a pandas DataFrame whose columns are the keys).

        Answers a float32 numpy array: 1-D (the outputs) for one row, 2-D (one row of
        outputs per input row) for many, even when "many" is a single row.
        """
        values, found_keys, single = _rows_of(data)
        values = np.ascontiguousarray(values, dtype=np.float32)  # orjson needs C order
        doc: dict[str, Any] = {"values": values[0] if single else values}
        if keys is None:
            keys = found_keys
        if keys is not None:
            doc["keys"] = [str(k) for k in keys]
        if name:
            doc["model"] = name
        if version is not None:
            doc["version"] = int(version)
        answer = self.predict_raw(doc)
        result = np.asarray(answer, dtype=np.float32)
        if single:
            return result.reshape(-1)
        return result.reshape(values.shape[0], -1)

    def predict_proto(
        self, name: str | None, values: Sequence[float] | np.ndarray,
        keys: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """One row through the protobuf endpoint (as the C++ client); answer one
        (label, probability) pair per model output (label "" for unlabelled models)."""
        from .. import tfaas_pb2

        row = tfaas_pb2.Row()
        row.value.extend(np.asarray(values, dtype=np.float32).reshape(-1).tolist())
        if keys is not None:
            row.key.extend(str(k) for k in keys)
        if name:
            row.model = name
        _, _, data = self.request("POST", "proto", row.SerializeToString(),
                                  {"Content-Type": "application/octet-stream",
                                   "Accept": "application/octet-stream"})
        answer = tfaas_pb2.Predictions()
        try:
            answer.ParseFromString(data)
        except Exception as exc:  # google.protobuf.message.DecodeError
            raise TFaaSClientError(f"cannot parse the /proto answer: {exc}", None, data) from None
        return [(p.label, p.probability) for p in answer.prediction]

    def image(self, name: str | None, image: Any, version: int | None = None) -> Any:
        """Classify an image (a png/jpg path, its bytes, or a PIL image) with model ``name``.

        Answers the server's JSON: ``{"filename", "labels": [{"label", "probability"}...]}``
        (top 5) for a model with labels, the list of outputs for one without.
        """
        filename, content, ctype = _image_payload(image)
        fields = {}
        if name:
            fields["model"] = name
        if version is not None:
            fields["version"] = str(int(version))
        body, form_type = encode_multipart(fields, {"image": (filename, content, ctype)})
        return self._json("POST", "image", body, {"Content-Type": form_type})


# ----------------------------------------------------------------------------- helpers


def _quote(name: str) -> str:
    return urllib.parse.quote(str(name), safe="")


def _chunks(body: bytes, progress: Progress) -> Iterator[bytes]:
    total = len(body)
    view = memoryview(body)
    progress(0, total)
    for start in range(0, total, _CHUNK):
        chunk = view[start : start + _CHUNK]
        yield chunk.tobytes()
        progress(min(start + _CHUNK, total), total)


def _tar_gz(folder: Path, top: str) -> bytes:
    """Pack ``folder`` as a .tar.gz (in memory) under the top-level folder ``top``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(folder), arcname=top)
    return buf.getvalue()


def _is_keras_model(obj: Any) -> bool:
    return not isinstance(obj, (str, bytes, os.PathLike)) and (
        hasattr(obj, "export") or hasattr(obj, "save")
    ) and hasattr(obj, "predict")


def _model_payload(model: Any) -> tuple[str, bytes]:
    """(filename, bytes) of the ``model`` part for what :meth:`TFaaSClient.upload` accepts."""
    if isinstance(model, (bytes, bytearray)):
        return "model.pb", bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / "saved_model.pb").is_file():
                raise FileNotFoundError(
                    f"{path} is a folder but not a SavedModel (no saved_model.pb in it)"
                )
            return f"{path.name or 'saved_model'}.tar.gz", _tar_gz(path, path.name or "model")
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        return path.name, path.read_bytes()
    if _is_keras_model(model):
        return "saved_model.tar.gz", _export_keras(model)
    raise TypeError(
        "model must be a file path, a SavedModel folder, bytes or a Keras model, "
        f"not {type(model).__name__}"
    )


def _export_keras(model: Any) -> bytes:
    """Export a live Keras model as a SavedModel and pack it (TensorFlow needed here only)."""
    with tempfile.TemporaryDirectory(prefix="tfaas-export-") as tmp:
        target = Path(tmp) / "saved_model"
        if hasattr(model, "export"):
            try:
                model.export(str(target), verbose=False)
            except TypeError:  # tf.keras 2.x: no verbose argument
                model.export(str(target))
        else:
            # a TensorFlow module object (tf.Module) was handed in, so its TensorFlow is
            # loaded: use that one rather than importing it on the client side
            tf = sys.modules["tensorflow"]
            tf.saved_model.save(model, str(target))
        return _tar_gz(target, "saved_model")


def _image_payload(image: Any) -> tuple[str, bytes, str]:
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
        kind = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png"
        return f"image.{'jpg' if kind == 'jpeg' else 'png'}", data, f"image/{kind}"
    if isinstance(image, (str, os.PathLike)):
        path = Path(image).expanduser()
        data = path.read_bytes()
        kind = "jpeg" if data[:3] == b"\xff\xd8\xff" else "png"
        return str(path), data, f"image/{kind}"
    if hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return "image.png", buf.getvalue(), "image/png"
    raise TypeError(f"image must be a path, bytes or a PIL image, not {type(image).__name__}")


def _rows_of(data: Any) -> tuple[np.ndarray, list[str] | None, bool]:
    """(float32 rows, keys found in the data or None, whether it was one row)."""
    module = type(data).__module__ or ""
    if module.startswith("pandas"):
        if hasattr(data, "columns"):  # DataFrame: columns are the keys
            return (np.asarray(data.to_numpy(dtype=np.float32)).reshape(len(data), -1),
                    [str(c) for c in data.columns], False)
        if hasattr(data, "index"):  # Series: one row, index are the keys
            return (np.asarray(data.to_numpy(dtype=np.float32)).reshape(1, -1),
                    [str(k) for k in data.index], True)
    if isinstance(data, dict):
        keys = [str(k) for k in data]
        columns = [np.asarray(v, dtype=np.float32) for v in data.values()]
        if not columns:
            raise ValueError("no values to predict")
        if all(c.ndim == 0 for c in columns):
            return np.asarray(columns, dtype=np.float32).reshape(1, -1), keys, True
        if all(c.ndim == 1 for c in columns) and len({c.shape[0] for c in columns}) == 1:
            return np.stack(columns, axis=1), keys, False
        raise ValueError("a dict must map keys to numbers (one row) or to equal-length columns")
    try:
        array = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(
            "data must be numbers, rows of numbers of the same length, a dict, "
            "a numpy array or a pandas DataFrame"
        ) from None
    if array.ndim == 1:
        if array.size == 0:
            raise ValueError("no values to predict")
        return array.reshape(1, -1), None, True
    if array.ndim == 2:
        if array.shape[0] == 0:
            raise ValueError("no rows to predict")
        return array, None, False
    raise ValueError(f"data must be 1-D (one row) or 2-D (rows), not {array.ndim}-D")
