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

import contextlib
import http.client
import io
import json
import logging
import os
import socket
import ssl
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import weakref
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union, cast

import numpy as np
import orjson

from .. import __version__
from ..v2binary import HEADER_LENGTH, binary_request, split_answer
from .forms import encode_multipart
from .shm import Region, may_share_memory
from .tensors import input_tensors, output_rows
from .urls import choose_token, parse_address, redact_key

__all__ = ["TFaaSClient", "TFaaSClientError"]

PathLike = Union[str, "os.PathLike[str]"]
#: ``progress(sent_bytes, total_bytes)``, called as an upload is sent.
Progress = Callable[[int, int], None]
#: A request body: bytes, or buffers sent one after the other from their own memory.
Body = Union[bytes, Sequence[Union[bytes, memoryview]]]

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
              http.client.CannotSendRequest, http.client.BadStatusLine)


def _close_all(connections: list[http.client.HTTPConnection]) -> None:
    for conn in connections:
        conn.close()


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


def _default_user_agent() -> str:
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"tfaas-jupyter/{__version__} python/{python}"


# ----------------------------------------------------------------------------- the client


class TFaaSClient:
    """Talks to one TFaaS server.

    ``url`` is the tfaas base (``http://host:8888/user/x/tfaas``), the Jupyter server's
    URL, or any address copied from the browser (``.../lab/tree/x.ipynb?token=...``):
    all mean ``{base_url}tfaas/`` (see :mod:`tfaas_jupyter.client.urls`). ``token`` is
    the Jupyter token, sent as ``Authorization: token ...``; when None, the URL's
    ``?token=`` is used, else ``$TFAAS_TOKEN``, ``$JUPYTER_TOKEN``, ``$JPY_API_TOKEN``,
    ``$JUPYTERHUB_API_TOKEN``; ``token=""`` sends none. ``ssl_context`` configures HTTPS
    (client certificates, CA path); the default verifies the server against the
    system's CAs.

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
        address = parse_address(url)
        self.url = address.tfaas_url
        self.token = choose_token(token, address)
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
        # a client dropped without close() (a notebook cell's) closes its connections
        # when collected, rather than leaving sockets for the interpreter to warn about
        weakref.finalize(self, _close_all, self._idle)
        #: :meth:`predict` sends arrays of at least this many values as binary tensors
        #: (smaller ones as JSON, as fast there and without the model's metadata request).
        self.binary_min_values = 4096
        #: About this many bytes of rows per binary request, and at most this many rows.
        self.chunk_bytes = 8 << 20
        self.max_chunk_rows = 50_000
        #: How many chunks are on their way at once.
        self.in_flight = 4
        #: Whether :meth:`predict` may pass rows through shared memory: None finds out
        #: (same machine and user, probed once), False never.
        self.shared_memory: bool | None = None
        #: Rows of at least this many bytes go through shared memory when it works.
        self.shm_min_bytes = 1 << 20
        self._shm_works: bool | None = None

    def __repr__(self) -> str:
        return f"TFaaSClient({redact_key(self.url)!r})"

    def __enter__(self) -> TFaaSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle kept-alive connections."""
        with self._lock:
            idle = self._idle[:]
            self._idle.clear()
        _close_all(idle)

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
        body: Body | None = None,
        headers: dict[str, str] | None = None,
        *,
        progress: Progress | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request to ``{url}{path}``; answer (status, headers, body) of a
        2xx reply, raise :class:`TFaaSClientError` for anything else. A body given as
        a list of buffers is sent from their memory, one after the other."""
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            all_headers["Authorization"] = f"token {self.token}"
        all_headers.update(headers or {})
        if isinstance(body, (list, tuple)):
            all_headers["Content-Length"] = str(sum(len(part) for part in body))
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
                    assert isinstance(body, bytes), "upload progress is for a bytes body"
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
        return cast("dict[str, Any]", self._json("GET", f"models/{_quote(name)}"))

    def metadata(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        """A model version's V2 metadata (``GET v2/models/NAME[/versions/V]``): its inputs
        and outputs with their V2 datatypes and shapes. The server loads the version
        to answer, so this also makes it ready."""
        return cast("dict[str, Any]", self._json("GET", self._v2_path(name, version)))

    def params(self, name: str, version: int | None = None) -> dict[str, Any]:
        """The params.json of a model (its latest version, or ``version``)."""
        path = f"params/{_quote(name)}" + (f"/{int(version)}" if version is not None else "")
        return cast("dict[str, Any]", self._json("GET", path))

    def set_default(self, name: str) -> dict[str, Any]:
        """Make ``name`` the model used by requests naming none (the original's POST /params)."""
        return cast("dict[str, Any]", self._json("POST", "params", orjson.dumps({"name": name}),
                                                 {"Content-Type": "application/json"}))

    def delete(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Delete a model (every version), or only one ``version`` of it."""
        path = f"delete/{_quote(name)}" + (f"/{int(version)}" if version is not None else "")
        return cast("dict[str, Any]", self._json("DELETE", path))

    def export(self, directory: PathLike, model: str | None = None,
               version: int | str | None = None) -> Path:
        """Unpack the server's export (every model, or ``model``; every version, or
        ``version``, a number or a label) into ``directory``: ``models/NAME/VERSION/``
        SavedModels, ``models.config`` for TF Serving, ``kserve/NAME.yaml`` manifests and
        Triton's model repository ``triton/`` (with ``kserve/NAME-triton.yaml``).
        Answers the directory."""
        query = {"model": model} if model else {}
        if version is not None:
            query["version"] = str(version_ref(version))
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        _, _, data = self.request("GET", "export" + suffix,
                                  headers={"Accept": "application/gzip"})
        target = Path(directory).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                path = Path(member.name)
                # hard links (Triton's copy of each SavedModel) point inside the export
                link = Path(member.linkname) if member.islnk() else None
                if any(p.is_absolute() or ".." in p.parts for p in (path, link) if p) or not (
                    member.isfile() or member.isdir() or member.islnk()
                ):
                    raise TFaaSClientError(f"unsafe path in the export: {member.name!r}")
            tar.extractall(target)
        return target

    def score(self, model: str, data: Any, *, engine: str | None = None,
              cluster: Any = None, output: PathLike | None = None,
              batch_rows: int | None = None, progress: bool = True,
              version: int | str | None = None, key: str | None = None) -> Any:
        """Score a whole dataset with one model version, on the engine the data lives on.

        ``model`` is a name (the latest version), ``"name:label"`` or ``"name:3"`` (or
        give ``version=``). ``data`` is a 2-D numpy array, a pandas DataFrame (columns
        picked by the model's keys), a Dask Array or DataFrame, an awkward or
        dask-awkward array of records, a Spark DataFrame,
        :class:`~tfaas_jupyter.scoring.RootFiles` or Parquet paths. ``engine`` is
        ``"local"`` (this process), ``"dask"`` (``cluster`` is a ``distributed.Client``,
        default the current one), ``"spark"`` (``cluster`` is a SparkSession) or
        ``"service"`` (rows sent to this server); by default what the data is.

        With engine ``"service"`` and Dask or Spark data (or ``cluster``), each worker
        sends its partitions to this server as binary tensors (``v2/.../infer``),
        authenticated with ``key`` (best a predict-only TFaaS key, so the cluster holds
        no full token; default this client's own credential).

        Otherwise the model is fetched from the server once (as its exported SavedModel), shipped
        to each worker once and loaded once per worker process; no worker calls the
        server. Answers scores of the data's kind (Dask and Spark lazy), or with
        ``output=`` writes Parquet files there (with the model's name, version and
        content hash in their metadata) and answers the path.
        """
        from ..scoring.score import score

        return score(self, model, data, engine=engine, cluster=cluster,
                     output=None if output is None else os.fspath(output),
                     batch_rows=batch_rows, progress=progress, version=version, key=key)

    def status(self) -> dict[str, Any]:
        """The server's status: machine figures, worker, TensorFlow, models, counts."""
        return cast("dict[str, Any]", self._json("GET", "status"))

    def capture(self, name: str, since: datetime | str | None = None,
                until: datetime | str | None = None) -> Any:
        """The captured predictions of model ``name`` (the server's ``capture_dir``) as
        a pandas DataFrame: ``time``, ``model``, ``version``, ``caller``,
        ``latency_ms``, and per input and output ``input:NAME`` / ``output:NAME`` (the
        request's values, flattened, in the model's dtype) with its ``...:shape``.
        ``since`` and ``until`` (datetimes or ISO 8601 strings; UTC when they name no
        zone) keep those from ``since`` on and before ``until``: only those hours are
        read. Needs pandas and pyarrow."""
        import io

        import pandas

        query = urllib.parse.urlencode({
            which: when.isoformat() if isinstance(when, datetime) else when
            for which, when in (("since", since), ("until", until)) if when is not None})
        _, _, data = self.request("GET", f"capture/{_quote(name)}"
                                  + (f"?{query}" if query else ""),
                                  headers={"Accept": "application/vnd.apache.parquet"})
        return pandas.read_parquet(io.BytesIO(data))

    # -- keys (the owner's Jupyter token only) -----------------------------------

    def create_key(self, name: str, models: Sequence[str] | None = None,
                   scopes: Sequence[str] | None = None) -> dict[str, Any]:
        """A new TFaaS key; the answer's ``key`` and ``url`` are shown this once."""
        doc: dict[str, Any] = {"name": name}
        if models:
            doc["models"] = list(models)
        if scopes:
            doc["scopes"] = list(scopes)
        return cast("dict[str, Any]", self._json("POST", "keys", orjson.dumps(doc),
                                                 {"Content-Type": "application/json"}))

    def keys(self) -> list[dict[str, Any]]:
        """Every key's name, models, scopes, created and last-used times (no secret)."""
        return self._json("GET", "keys") or []

    def revoke_key(self, name: str) -> dict[str, Any]:
        """Revoke a key at once."""
        return cast("dict[str, Any]", self._json("DELETE", f"keys/{_quote(name)}"))

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
        return cast("dict[str, Any]",
                    self._json("POST", "upload", body, {"Content-Type": ctype}, progress))

    def upload_bundle(self, path: PathLike, progress: Progress | None = None) -> dict[str, Any]:
        """Upload the original's bundle: a .tar.gz whose top folder is the model's name."""
        body = Path(path).expanduser().read_bytes()
        headers = {"Content-Type": "application/octet-stream"}
        if body[:2] == b"\x1f\x8b":
            headers["Content-Encoding"] = "gzip"
        return cast("dict[str, Any]", self._json("POST", "upload", body, headers, progress))

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
        version: int | str | None = None,
        *,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Predictions of model ``name`` (None: the server's default model) for ``data``.

        ``data`` is one row (a list or 1-D array of numbers, a ``{key: value}`` dict,
        a pandas Series) or many rows (a list of rows, a 2-D array, a
        ``{key: column}`` dict, a pandas DataFrame whose columns are the keys).

        Numbers leave exactly as given: integers (Python ints, numpy and pandas integer
        columns) as JSON integers, floats in their own precision (a float64 is not
        squeezed to float32), booleans as 0/1; a row mixing ints and floats keeps
        each value as it is. An integer beyond 64 bits is a ValueError.

        Answers a numpy array: 1-D (the outputs) for one row, 2-D (one row of outputs
        per input row) for many, even when "many" is a single row. Its dtype is what the
        server sent: int64 when every output is a JSON integer (uint64 above 2**63),
        else float64, which holds a float32 output exactly too
        (``.astype(np.float32)`` gives back the model's float32 values). A model whose
        outputs mix integers and floats answers float64 here; :meth:`predict_raw`
        gives each value as the server wrote it.

        How the rows travel is chosen here, never changing the answer: a numeric array of
        at least :attr:`binary_min_values` values for a named model goes as binary
        tensors of the Open Inference Protocol (``v2/models/NAME/infer``), cut into
        chunks of about :attr:`chunk_bytes` of which :attr:`in_flight` are sent at once,
        each on its own connection, whenever the model's inputs take the rows exactly as
        the ``/json`` route would; anything else goes as JSON to ``/json``. A notebook
        shows a progress bar while several chunks are on their way (``progress=False``:
        never, ``True``: also outside a notebook). The debug log
        (``logging.getLogger("tfaas_jupyter.client.api")``) says which way was taken.
        """
        values, n_rows, found_keys, single = _rows_of(data)
        if keys is None:
            keys = found_keys
        if name and isinstance(values, np.ndarray) and values.size >= self.binary_min_values:
            result = self._predict_tensors(name, version, values, keys, progress)
            if result is not None:
                return result.reshape(-1) if single else result
        log.debug("predict %s: %d rows as JSON to /json", name, n_rows)
        doc: dict[str, Any] = {"values": values[0] if single else values}
        if keys is not None:
            doc["keys"] = [str(k) for k in keys]
        if name:
            doc["model"] = name
        if version is not None:
            doc["version"] = version_ref(version)
        result = _outputs_array(self.predict_raw(doc))
        if single:
            return result.reshape(-1)
        if result.ndim != 2 or result.shape[0] != n_rows:
            raise TFaaSClientError(f"the server's answer has shape {result.shape}, not one "
                                   f"row of outputs for each of the {n_rows} rows", None)
        return result

    def infer(self, name: str, inputs: Sequence[tuple[str, np.ndarray]],
              version: int | str | None = None) -> dict[str, np.ndarray]:
        """One Open Inference Protocol request with ``inputs`` ((name, array) pairs, each
        already of its input's dtype and shape) as binary tensors; answers the outputs
        by name, as read-only views of the answer's bytes (nothing is copied)."""
        return self._infer(name, [(n, np.asarray(a)) for n, a in inputs], version)

    def _infer(self, name: str, inputs: Sequence[tuple[str, np.ndarray]],
               version: int | str | None,
               regions: Sequence[dict[str, Any] | None] | None = None,
               ) -> dict[str, np.ndarray]:
        """:meth:`infer`; ``regions[i]``: input ``i``'s shared memory parameters
        (its bytes are in a registered region, not in the request)."""
        header, parts = binary_request(inputs, input_parameters=regions)
        _, headers, body = self.request(
            "POST", self._v2_path(name, version) + "/infer", [header, *parts],
            {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))},
        )
        length = headers.get(HEADER_LENGTH.lower())
        try:
            _, outputs = split_answer(body, int(length) if length is not None else None)
        except ValueError as exc:
            raise TFaaSClientError(f"cannot read the infer answer: {exc}", None, body) from None
        return outputs

    @staticmethod
    def _v2_path(name: str, version: int | str | None) -> str:
        path = f"v2/models/{_quote(name)}"
        if version is not None:
            path += f"/versions/{_quote(str(version_ref(version)))}"
        return path

    def _predict_tensors(self, name: str, version: int | str | None, rows: np.ndarray,
                         keys: Sequence[str] | None,
                         progress: bool | None) -> np.ndarray | None:
        """:meth:`predict`'s rows as binary tensors, or None when they go as JSON."""
        try:
            metadata = self.metadata(name, version)
            model_keys = None
            if keys is not None:
                ref = None if version is None else version_ref(version)
                if isinstance(ref, str):  # params.json of a label: the /json route maps it
                    log.debug("predict %s: keys with version label %r: JSON", name, ref)
                    return None
                model_keys = (self.params(name, ref) or {}).get("keys")
        except TFaaSClientError as exc:
            if exc.status == 404:  # no V2 here (the original server), or no such model
                return None
            raise
        tensors = input_tensors(metadata, rows, keys, model_keys)
        if tensors is None:
            log.debug("predict %s: the model's inputs do not take these rows as binary "
                      "tensors exactly: JSON", name)
            return None
        n_rows = rows.shape[0]
        started = time.perf_counter()
        outputs, way = self._infer_chunks(name, version, tensors, n_rows, progress)
        log.debug("predict %s: %d rows %s in %.3f s", name, n_rows, way,
                  time.perf_counter() - started)
        try:
            return output_rows(outputs, n_rows)
        except ValueError as exc:
            raise TFaaSClientError(f"the server's answer: {exc}", None) from None

    def _infer_chunks(self, name: str, version: int | str | None,
                      tensors: list[tuple[str, np.ndarray]], n_rows: int,
                      progress: bool | None) -> tuple[list[np.ndarray], str]:
        """The outputs for ``tensors``, sent in chunks of rows, :attr:`in_flight` at a
        time (each request on its own kept-alive connection), through a shared memory
        region when the server shares this machine's memory; and which way they went."""
        row_bytes = max(1, sum(a[:1].nbytes for _, a in tensors))
        per = max(1, min(self.max_chunk_rows, self.chunk_bytes // row_bytes))
        starts = list(range(0, n_rows, per))
        region = None
        if row_bytes * n_rows >= self.shm_min_bytes and self._shared_memory_works():
            region = self._shared_region(sum(a.nbytes for _, a in tensors))
        offsets = list(np.cumsum([0] + [a.nbytes for _, a in tensors[:-1]]))
        # each input's place in the region, the inputs one after the other
        views = None if region is None else [
            np.frombuffer(region.memory, dtype=a.dtype, count=a.size,
                          offset=int(offset)).reshape(a.shape)
            for offset, (_, a) in zip(offsets, tensors)]

        def one(start: int) -> list[np.ndarray]:
            part = [(n, a[start:start + per]) for n, a in tensors]
            where = None
            if views is not None and region is not None:
                # this chunk's rows into the region just before its request: the copy
                # overlaps the server's work on the chunks ahead of it
                for view, (_, a) in zip(views, part):
                    view[start:start + per] = a
                where = [{"shared_memory_region": region.name,
                          "shared_memory_offset": int(offset) + start * a[:1].nbytes,
                          "shared_memory_byte_size": a.nbytes}
                         for offset, (_, a) in zip(offsets, part)]
            return list(self._infer(name, part, version, where).values())

        way = "through shared memory" if region is not None else "as binary tensors"
        try:
            if len(starts) == 1:
                return one(0), way
            return self._pipelined(one, starts, per, n_rows, progress), way
        finally:
            if region is not None:
                views = None  # no view may outlive the region's mapping
                self._drop_region(region)

    def _pipelined(self, one: Callable[[int], list[np.ndarray]], starts: list[int], per: int,
                   n_rows: int, progress: bool | None) -> list[np.ndarray]:
        """``one(start)`` for each chunk, :attr:`in_flight` at a time; the outputs of
        the chunks joined in order."""
        results: dict[int, list[np.ndarray]] = {}
        bar = _progress_bar(n_rows, progress)
        try:
            with ThreadPoolExecutor(min(self.in_flight, len(starts))) as pool:
                futures = {pool.submit(one, start): start for start in starts}
                for future in as_completed(futures):
                    start = futures[future]
                    results[start] = future.result()
                    if bar is not None:
                        bar.update(min(per, n_rows - start))
        finally:
            if bar is not None:
                bar.close()
        ordered = [results[start] for start in starts]
        return [np.concatenate([part[i] for part in ordered]) for i in range(len(ordered[0]))]

    # -- shared memory ---------------------------------------------------------------

    def _shared_memory_works(self) -> bool:
        """Whether rows may go through shared memory: found out once per client."""
        if self.shared_memory is False:
            return False
        if self._shm_works is None:
            self._shm_works = self._probe_shared_memory()
        return self._shm_works

    def _probe_shared_memory(self) -> bool:
        if not may_share_memory(self._host):
            log.debug("predict: the server %s is not on this machine: binary tensors",
                      self._host)
            return False
        try:
            with Region(64, "tfaas-probe") as region:
                self._register(region)
                self._unregister(region)
        except (OSError, TFaaSClientError) as exc:
            log.debug("predict: no shared memory with the server (%s): binary tensors", exc)
            return False
        log.debug("predict: the server shares memory with this process")
        return True

    def _register(self, region: Region) -> None:
        self._json("POST", f"v2/systemsharedmemory/region/{_quote(region.name)}/register",
                   orjson.dumps(region.register_doc()), {"Content-Type": "application/json"})

    def _unregister(self, region: Region) -> None:
        self._json("POST", f"v2/systemsharedmemory/region/{_quote(region.name)}/unregister")

    def _shared_region(self, byte_size: int) -> Region | None:
        """A registered region of ``byte_size`` bytes for the rows (written into it
        chunk by chunk as they are sent), or None (then binary tensors) when it cannot
        be made."""
        try:
            region = Region(byte_size)
        except OSError as exc:
            log.debug("predict: no shared memory object (%s): binary tensors", exc)
            return None
        try:
            self._register(region)
        except BaseException:
            region.close()
            raise
        log.debug("predict: %d bytes of rows through shared memory region %s", byte_size,
                  region.name)
        return region

    def _drop_region(self, region: Region) -> None:
        try:
            self._unregister(region)
        except TFaaSClientError as exc:  # the server gone: it holds nothing of ours then
            log.debug("predict: unregistering %s: %s", region.name, exc)
        finally:
            region.close()

    def predict_proto(
        self, name: str | None, values: Sequence[float] | np.ndarray,
        keys: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """One row through the protobuf endpoint (as the C++ client); answer one
        (label, probability) pair per model output (label "" for unlabelled models).

        The protocol's values are float32: integers that float32 does not hold
        exactly (above 2**24) are a ValueError here, not rounded; :meth:`predict`
        sends them exactly."""
        from .. import tfaas_pb2

        given = np.asarray(values).reshape(-1)
        as_float32 = given.astype(np.float32)
        if given.dtype.kind in "iu" and not np.array_equal(as_float32, given):
            raise ValueError("the /proto endpoint carries float32 values, which do not hold "
                             "these integers exactly; use predict() (JSON)")
        row = tfaas_pb2.Row()
        row.value.extend(as_float32.tolist())
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

    def image(self, name: str | None, image: Any, version: int | str | None = None) -> Any:
        """Classify an image (a png/jpg path, its bytes, or a PIL image) with model ``name``.

        Answers the server's JSON: ``{"filename", "labels": [{"label", "probability"}...]}``
        (top 5) for a model with labels, the list of outputs for one without.
        """
        filename, content, ctype = _image_payload(image)
        fields = {}
        if name:
            fields["model"] = name
        if version is not None:
            fields["version"] = str(version_ref(version))
        body, form_type = encode_multipart(fields, {"image": (filename, content, ctype)})
        return self._json("POST", "image", body, {"Content-Type": form_type})


# ----------------------------------------------------------------------------- helpers


def version_ref(version: int | str) -> int | str:
    """A version number, or a version label ("stable") as the server resolves it."""
    if isinstance(version, str) and not version.strip().isdigit():
        return version.strip()
    return int(version)


def _progress_bar(total: int, wanted: bool | None) -> Any:
    """A tqdm bar counting rows: in a notebook (or when ``wanted``), if tqdm is there."""
    if wanted is False or (wanted is None and "ipykernel" not in sys.modules):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="rows", unit_scale=True, desc="predict", leave=False)


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


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keep TensorFlow's INFO logs ("Assets written to ...", on both stdout and stderr)
    out of the user's notebook while we export; errors still raise."""
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl")]
    levels = [logger.level for logger in loggers]
    absl = sys.modules.get("absl.logging")
    verbosity = absl.get_verbosity() if absl is not None else None
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        if absl is not None:
            absl.set_verbosity(absl.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if absl is not None:
            absl.set_verbosity(verbosity)


def _export_keras(model: Any) -> bytes:
    """Export a live Keras model as a SavedModel and pack it (TensorFlow needed here only)."""
    with tempfile.TemporaryDirectory(prefix="tfaas-export-") as tmp, _quiet_export():
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


#: One value of a request, as it goes into the JSON body.
Number = Union[int, float]
_INT_RANGE = (-(2**63), 2**64 - 1)  # what a JSON integer may hold (int64 or uint64)


def _number(value: Any) -> Number:
    """A Python int or float holding ``value`` exactly (bool as 0/1)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        number = int(value)
        if not _INT_RANGE[0] <= number <= _INT_RANGE[1]:
            raise ValueError(f"the integer {number} does not fit in 64 bits")
        return number
    if isinstance(value, (float, np.floating)) and np.dtype(type(value)).itemsize <= 8:
        return float(value)
    raise ValueError(f"data must be numbers, not {type(value).__name__} ({value!r:.40})")


def _is_sequence(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, (list, tuple)) or (
        hasattr(value, "__len__") and hasattr(value, "__getitem__")
        and not isinstance(value, (str, bytes, dict))
    )


def _json_array(array: np.ndarray) -> np.ndarray:
    """A numeric array as orjson writes it without loss: C order, integers as JSON
    integers, float32/float64 in their own precision (float16 widened to float32,
    booleans as 0/1)."""
    kind = array.dtype.kind
    if kind == "b":
        array = array.astype(np.uint8)
    elif kind == "f" and array.dtype.itemsize == 2:
        array = array.astype(np.float32)
    elif kind not in "iuf" or array.dtype.itemsize > 8:
        raise ValueError(f"data must be numbers, not a {array.dtype} array")
    return np.ascontiguousarray(array)


def _plain_rows(data: Any) -> tuple[list[list[Number]], bool]:
    """Python numbers or (rows of them) as rows of exact Python ints and floats."""
    items = list(data)
    if not items:
        raise ValueError("no values to predict")
    if not any(_is_sequence(item) for item in items):
        return [[_number(item) for item in items]], True
    rows = []
    for row in items:
        if not _is_sequence(row):
            raise ValueError("data must be one row of numbers or rows of numbers, not both")
        if any(_is_sequence(v) for v in row):
            raise ValueError("data must be 1-D (one row) or 2-D (rows), not deeper")
        rows.append([_number(v) for v in row])
    if len({len(row) for row in rows}) != 1:
        raise ValueError("rows must all have the same length")
    if not rows[0]:
        raise ValueError("no values to predict")
    return rows, False


def _column_rows(columns: list[Any]) -> np.ndarray | list[list[Number]]:
    """Columns (arrays, lists) as rows; one array when one dtype holds every value
    exactly, else rows of Python numbers, each value as it was given."""
    arrays = [c for c in columns if isinstance(c, np.ndarray) and c.dtype.kind in "biuf"]
    if len(arrays) == len(columns):
        kinds = {a.dtype.kind for a in arrays}
        common = np.result_type(*arrays)
        if kinds == {"f"} or (kinds <= set("biu") and common.kind in "iu"):
            return _json_array(np.stack(arrays, axis=1).astype(common, copy=False))
    lists = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in columns]
    return [[_number(v) for v in row] for row in zip(*lists)]


def _array_rows(array: np.ndarray) -> tuple[np.ndarray | list[list[Number]], bool]:
    """A 1-D (one row) or 2-D (rows) array, ready for JSON."""
    if array.ndim not in (1, 2):
        raise ValueError(f"data must be 1-D (one row) or 2-D (rows), not {array.ndim}-D")
    if array.size == 0:
        raise ValueError("no values to predict")
    single = array.ndim == 1
    rows = array.reshape(1, -1) if single else array
    if rows.dtype.kind == "O":  # numbers of several kinds: each as it is
        return [[_number(v) for v in row] for row in rows.tolist()], single
    return _json_array(rows), single


def _rows_of(data: Any) -> tuple[np.ndarray | list[list[Number]], int, list[str] | None, bool]:
    """(rows ready for JSON, how many, keys found in the data or None, whether the data
    was one row). Rows are one exact numeric array, or lists of Python numbers when the
    values are of several kinds."""
    module = type(data).__module__ or ""
    if module.startswith("pandas"):
        if hasattr(data, "columns"):  # DataFrame: columns are the keys
            if len(data) == 0 or len(data.columns) == 0:
                raise ValueError("no rows to predict")
            columns = [data.iloc[:, i].to_numpy() for i in range(len(data.columns))]
            return (_column_rows(columns), len(data), [str(c) for c in data.columns], False)
        if hasattr(data, "index"):  # Series: one row, index are the keys
            rows, _ = _array_rows(np.asarray(data.to_numpy()).reshape(-1))
            return rows, 1, [str(k) for k in data.index], True
    if isinstance(data, dict):
        keys = [str(k) for k in data]
        if not data:
            raise ValueError("no values to predict")
        values = list(data.values())
        if not any(_is_sequence(v) for v in values):
            return [[_number(v) for v in values]], 1, keys, True
        columns = [v if isinstance(v, np.ndarray) else list(v) if _is_sequence(v) else None
                   for v in values]
        if any(c is None or np.ndim(c) != 1 for c in columns) or \
                len({len(c) for c in columns}) != 1:
            raise ValueError("a dict must map keys to numbers (one row) or to equal-length "
                             "columns")
        if not len(columns[0]):
            raise ValueError("no rows to predict")
        return _column_rows(columns), len(columns[0]), keys, False
    if isinstance(data, np.ndarray):
        rows, single = _array_rows(data)
        return rows, len(rows), None, single
    if not _is_sequence(data):
        raise ValueError(
            "data must be numbers, rows of numbers of the same length, a dict, "
            "a numpy array or a pandas DataFrame"
        )
    plain, single = _plain_rows(data)
    return plain, len(plain), None, single


def _outputs_array(answer: Any) -> np.ndarray:
    """The server's outputs (JSON numbers, or rows of them) as one numpy array of
    their type: int64 (uint64 above 2**63) when all are integers, else float64."""
    try:
        result = np.asarray(answer)
    except ValueError:
        result = None
    if result is None or result.dtype.kind not in "biuf":
        raise TFaaSClientError(f"the server's answer is not rows of numbers: "
                               f"{str(answer)[:200]}", None)
    return result
