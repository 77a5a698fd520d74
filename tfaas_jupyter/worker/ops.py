"""The model worker's operations, typed: :class:`Op` names them, one dataclass per
request and one per answer says what each carries.

Both sides use these: the server builds a request and reads its answer
(:mod:`tfaas_jupyter.server.operations`), the worker parses the request and
dispatches it once on its type (:meth:`tfaas_worker.main.Worker.handle`). On the wire
a request is its frame's header, ``{"op": ..., "id": ..., <fields>}``, plus the
arrays of a prediction; an answer is the reply's header with the same ``id`` (or
``{"error", "kind"}``), plus the arrays of a prediction's outputs.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional, TypeVar, Union

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:  # the worker's interpreter (a kernel's) need not have typing_extensions

    def dataclass_transform(**_: Any) -> Any:
        return lambda decorated: decorated


#: The exit code of a worker whose memory limit is below its own size at start: a
#: setting to change (the supervisor does not try again), not a passing failure.
MEMORY_LIMIT_REFUSED = 4


class Op(str, enum.Enum):
    """The operations of the model worker."""

    #: Is the worker up (answered by the lane that reads it, however busy the rest).
    PING = "ping"
    #: Load a model into the cache unless it is there; answers its signature.
    LOAD = "load"
    #: Run a cached model on the request's arrays; ``not_loaded`` when it is not cached.
    PREDICT = "predict"
    #: Write a model as a SavedModel with ``serving_default``.
    EXPORT = "export"
    #: Evict the cached models whose key starts with a prefix.
    UNLOAD = "unload"
    #: The worker's own state: versions, threads, loaded models, memory.
    STATUS = "status"


class _Message:
    """A request or an answer: its fields are its frame header's members."""

    _names: ClassVar[tuple[str, ...]] = ()
    #: the members without a default, which a header must carry
    _required: ClassVar[tuple[str, ...]] = ()

    def header(self) -> dict[str, Any]:
        """The frame header's members of this message."""
        return {name: getattr(self, name) for name in type(self)._names}

    @classmethod
    def parse(cls, header: Mapping[str, Any]) -> Any:
        """The message a frame header carries; ``ValueError`` naming a missing or
        mistyped member."""
        # one pass over names found once per class (every prediction parses two
        # messages: ``dataclasses.fields`` per call cost more than the rest of it)
        for name in cls._required:
            if name not in header:
                raise ValueError(f"request is missing '{name}'")
        return cls(**{name: header[name] for name in cls._names if name in header})


_M = TypeVar("_M", bound=type)


@dataclass_transform(frozen_default=True)
def _message(cls: _M) -> _M:
    """A frozen dataclass with its field names kept for :meth:`_Message.header`."""
    made: Any = dataclass(frozen=True)(cls)
    made._names = tuple(f.name for f in fields(made))
    made._required = tuple(f.name for f in fields(made)
                           if f.default is MISSING and f.default_factory is MISSING)
    return made  # type: ignore[no-any-return]


@_message
class Ping(_Message):
    op: ClassVar[Op] = Op.PING


@_message
class Load(_Message):
    """``warmup``: the batch sizes the model runs once at each before it is cached
    (None or empty: no warm-up beyond the loader's own check)."""

    op: ClassVar[Op] = Op.LOAD
    key: str
    path: str
    format: str
    params: dict[str, Any]
    warmup: Optional[list[int]] = None


@_message
class Predict(_Message):
    """The model by its key only: its path and params travel with its load.
    ``regions``: where inputs read in place from a client's shared memory region lie
    (an entry per input, None for those the frame carries; None when all travel)."""

    op: ClassVar[Op] = Op.PREDICT
    key: str
    regions: Optional[list[Any]] = None


@_message
class Export(_Message):
    """A model as for its load, and the folder to write it to."""

    op: ClassVar[Op] = Op.EXPORT
    key: str
    path: str
    format: str
    params: dict[str, Any]
    target: str


@_message
class Unload(_Message):
    op: ClassVar[Op] = Op.UNLOAD
    prefix: str


@_message
class Status(_Message):
    op: ClassVar[Op] = Op.STATUS


Request = Union[Ping, Load, Predict, Export, Unload, Status]

#: The request class of each operation.
REQUESTS: dict[Op, Any] = {cls.op: cls for cls in (Ping, Load, Predict, Export, Unload, Status)}
#: The same by the operation's name on the wire (a dict lookup: ``Op(name)`` costs more).
_REQUEST_OF_VALUE: dict[str, Any] = {op.value: cls for op, cls in REQUESTS.items()}


def request_header(request: Any) -> dict[str, Any]:
    """The frame header of ``request`` (without its ``id``)."""
    header = {"op": request.op.value}
    for name in request._names:
        value = getattr(request, name)
        if value is not None:
            header[name] = value
    return header


def parse_request(header: Mapping[str, Any]) -> Any:
    """The request a frame header carries; ``ValueError`` for an unknown operation or
    a missing or mistyped member."""
    op = header.get("op")
    kind = _REQUEST_OF_VALUE.get(op) if isinstance(op, str) else None
    if kind is None:
        raise ValueError(f"unknown op '{op}'")
    request = kind.parse(header)
    for name in request._names:
        value = getattr(request, name)
        if name == "params":
            if not isinstance(value, dict):
                raise ValueError("'params' must be an object")
        elif name == "regions":
            if value is not None and not isinstance(value, list):
                raise ValueError("'regions' must be a list")
        elif name == "warmup":
            if value is not None and not (isinstance(value, list) and all(
                    isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in value)):
                raise ValueError("'warmup' must be a list of batch sizes")
        elif not isinstance(value, str):
            raise ValueError(f"'{name}' must be a string")
    return request


# -- answers ---------------------------------------------------------------------------


@_message
class Pong(_Message):
    """The worker is up (the heartbeat's answer): its resident memory in bytes and
    how many models it holds, read without waiting for any other thread."""

    rss: int = 0
    models: int = 0


@_message
class Loaded(_Message):
    """A model's signature; ``loaded``: this call loaded it (it was not cached);
    ``warmup_s``: the seconds of its warm-up (None: none ran)."""

    inputs: list[Any]
    outputs: list[Any]
    loaded: bool = False
    warmup_s: Optional[float] = None


@_message
class Predicted(_Message):
    """The seconds inside the model (the outputs are the reply's arrays)."""

    model_s: float


@_message
class Exported(_Message):
    inputs: list[Any]
    outputs: list[Any]


@_message
class Unloaded(_Message):
    unloaded: list[str]


#: The answer class of each operation (a status answers the worker's status document).
ANSWERS: dict[Op, type | None] = {
    Op.PING: Pong, Op.LOAD: Loaded, Op.PREDICT: Predicted, Op.EXPORT: Exported,
    Op.UNLOAD: Unloaded, Op.STATUS: None,
}
