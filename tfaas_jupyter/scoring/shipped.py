"""The model as it travels to an engine's workers: one exported SavedModel version,
packed, with its content hash and what scoring needs to know about it."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: How many times a shipped model arrived in this process (unpickled), by content hash:
#: a broadcast arrives once per worker process, whatever the number of partitions.
ARRIVALS: Counter[str] = Counter()


@dataclass
class ShippedModel:
    """One model version ready to ship: ``archive`` is its SavedModel folder as an
    uncompressed tar, ``digest`` the SHA-256 of the folder's files (paths and bytes),
    ``signature`` the served inputs and outputs in the server's order (``name``,
    ``key`` in the SavedModel's signature, ``dtype``, ``shape``)."""

    name: str
    version: int
    digest: str
    archive: bytes = field(repr=False)
    signature: dict[str, Any] = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict, repr=False)
    labels: list[str] = field(default_factory=list)
    #: the server's key of the version (``name@uid``); "" when the export has none
    source: str = ""

    @classmethod
    def from_folder(cls, folder: Path, name: str, version: int) -> ShippedModel:
        """The SavedModel the export wrote at ``folder`` (``models/NAME/VERSION``)."""
        assets = folder / "assets"
        signature = json.loads((assets / "signature.json").read_text("utf-8"))
        params_file = assets / "params.json"
        params = json.loads(params_file.read_text("utf-8")) if params_file.is_file() else {}
        labels_file = assets / "labels.txt"
        labels = ([line.strip() for line in labels_file.read_text("utf-8").splitlines()
                   if line.strip()] if labels_file.is_file() else [])
        source_file = assets / "tfaas-version.json"
        source = (str(json.loads(source_file.read_text("utf-8")).get("key") or "")
                  if source_file.is_file() else "")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in files:
                relative = path.relative_to(folder).as_posix()
                data = path.read_bytes()
                digest.update(relative.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
                info = tarfile.TarInfo(relative)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return cls(name, int(version), digest.hexdigest(), buffer.getvalue(), signature,
                   params, labels, source)

    @property
    def cache_key(self) -> str:
        """What a worker caches the loaded model by: the server's key of the version
        (two exports of one version differ in bytes: TensorFlow names its functions
        anew), else the content hash."""
        return f"{self.source}:{self.version}" if self.source else self.digest

    @property
    def input_keys(self) -> list[str] | None:
        """The column names the model's params.json lists (None: the order of the columns)."""
        keys = self.params.get("keys")
        return [str(k) for k in keys] if keys else None

    @property
    def score_names(self) -> list[str]:
        """One name per score column: the model's labels when there is one per output
        value, else each output's name (``name_i`` for an output of several values)."""
        widths = [_width(o.get("shape")) for o in self.signature["outputs"]]
        known = [w for w in widths if w is not None]
        if self.labels and len(known) == len(widths) and sum(known) == len(self.labels):
            return list(self.labels)
        names = []
        for spec, width in zip(self.signature["outputs"], widths):
            name = str(spec["name"])
            names += [name] if width == 1 else [f"{name}_{i}" for i in range(width or 1)]
        return names

    @property
    def metadata(self) -> dict[str, str]:
        """What identifies the scoring model in an output's metadata."""
        return {"tfaas.model": self.name, "tfaas.version": str(self.version),
                "tfaas.sha256": self.digest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        ARRIVALS[self.digest] += 1


def _width(shape: Any) -> int | None:
    """Values per row of an output of ``shape`` (None when a dimension is unknown)."""
    dims = list(shape or [None])[1:]
    width = 1
    for d in dims:
        if d is None or d < 0:
            return None
        width *= int(d)
    return width
