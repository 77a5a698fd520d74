"""What the server tells the model worker about one model version: :class:`ModelRef`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol


class _Version(Protocol):
    """What :meth:`ModelRef.of` reads (a repository ``ModelVersion``)."""

    name: str
    version: int
    params: dict[str, Any]

    @property
    def key(self) -> str: ...
    @property
    def model_path(self) -> Any: ...
    @property
    def format(self) -> str: ...


@dataclass(frozen=True)
class ModelRef:
    """One model version as the model worker knows it.

    ``key`` names the loaded model in the worker's cache (unique per version content);
    ``path``, ``format`` and ``params`` are what loading it takes, and travel to the
    worker only with a load, never with a prediction. ``name`` and ``version`` are for
    people (status, batching statistics).
    """

    key: str
    path: str
    format: str
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)
    name: str = ""
    version: int = 0

    @classmethod
    def of(cls, mv: _Version) -> ModelRef:
        """The reference of a repository model version."""
        return cls(key=mv.key, path=str(mv.model_path), format=mv.format, params=mv.params,
                   name=mv.name, version=mv.version)
