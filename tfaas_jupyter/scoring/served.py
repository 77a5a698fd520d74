"""Engine ``service`` on a cluster: what travels to the workers is not the model but where
to send the rows (the server's URL and a credential, best a predict-only TFaaS key, so the
grid holds no full token). Each worker process sends its partitions as binary tensors of
the Open Inference Protocol (``v2/models/NAME/versions/N/infer``) with its own client.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..v2binary import V2_DTYPES
from .shipped import ShippedModel

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


@dataclass
class ServedModel(ShippedModel):
    """One model version scored by the server: ``version`` is a number (resolved once in
    the kernel, so a label moved during the run changes nothing), ``signature`` as the
    V2 metadata gives it, ``credential`` what the workers authenticate with."""

    url: str = ""
    credential: str = field(default="", repr=False)
    #: makes a worker's client of the server (the package's client class, by reference)
    connect: Callable[[], Any] | None = field(default=None, repr=False)

    def score(self, rows: np.ndarray, batch_rows: int) -> np.ndarray:
        """The server's scores of 2-D ``rows`` (the model's values in order), in the
        outputs' own dtype: exactly what ``TFaaSClient.predict`` answers, asked
        ``batch_rows`` rows per request."""
        client = _client(self)
        client.max_chunk_rows = int(batch_rows)
        scores = np.asarray(client.predict(self.name, rows, version=self.version,
                                           progress=False))
        dtype = np.result_type(*[np.dtype(o["dtype"]) for o in self.signature["outputs"]])
        return scores.astype(dtype, copy=False) if dtype.kind in "biuf" else scores


def _client(model: ServedModel) -> Any:
    """This process's client of the server (one per URL and credential): every array goes
    as binary tensors, never through shared memory (a worker is on another machine)."""
    with _lock:
        client = _clients.get((model.url, model.credential))
        if client is None:
            assert model.connect is not None, "a ServedModel is made by served_model()"
            client = model.connect()
            client.binary_min_values = 1
            client.shared_memory = False
            _clients[(model.url, model.credential)] = client
        return client


def _package_client(client: Any) -> type:
    """The package's own class of ``client``: a subclass written in a notebook or a test
    need not be importable on a worker, which unpickles the class by its module."""
    return next(c for c in type(client).__mro__
                if c.__module__ == "tfaas_jupyter.client.api" and c.__name__ == "TFaaSClient")


def _signature_spec(tensor: dict[str, Any]) -> dict[str, Any]:
    """A V2 metadata tensor as a signature entry (numpy dtype, None for a free dimension)."""
    datatype = str(tensor.get("datatype"))
    dtype = V2_DTYPES[datatype].name if datatype in V2_DTYPES else "object"
    shape = [None if d is None or d < 0 else int(d) for d in tensor.get("shape") or []]
    return {"name": tensor.get("name"), "key": tensor.get("name"), "dtype": dtype,
            "shape": shape}


def served_model(client: Any, name: str, version: int | str | None,
                 key: str | None) -> ServedModel:
    """``name``'s version (a number, a label or the latest) as engine ``service`` ships it;
    ``key`` (default: the client's own credential) is what the workers send."""
    detail = client.model(name)
    if version is None:
        number = int(detail["version"])
    elif isinstance(version, str) and not version.isdigit():
        labels = detail.get("version_labels") or {}
        if version not in labels:
            raise ValueError(f"model {name!r} has no version label {version!r}")
        number = int(labels[version])
    else:
        number = int(version)
    metadata = client.metadata(name, number)  # loads it, once
    signature = {"inputs": [_signature_spec(t) for t in metadata.get("inputs") or []],
                 "outputs": [_signature_spec(t) for t in metadata.get("outputs") or []]}
    labels = next((v.get("labels") for v in detail.get("version_details") or []
                   if v.get("version") == number), None)
    credential = key if key is not None else (client.token or "")
    connect = functools.partial(_package_client(client), client.url,
                                token=credential or None, timeout=600)
    return ServedModel(name, number, digest="", archive=b"", signature=signature,
                       params=client.params(name, number) or {}, labels=list(labels or []),
                       source=f"service:{client.url}:{name}", url=client.url,
                       credential=credential, connect=connect)
