"""A V2 infer request whose body is scored while it arrives.

Reading a 16.8 MB body (100,000 rows of 42 float32) through Tornado takes longer than
the model's own work on it, so waiting for the whole body, then for the model, adds
the two. :class:`StreamedInfer` takes the body as it is read (the handler reads it
from the connection itself): once the JSON header has arrived it knows the request's
one binary input tensor and its row size, and each time another piece of rows (about
:data:`PIECE_BYTES`) is complete in the buffer, that piece goes to the model worker
as an ordinary prediction while the next rows are still on the wire.
The answer is the pieces' outputs, concatenated in order.

Pieces are separate worker calls of a few MB each, not one frame held open for the
whole body: a slow client holds no channel, and other models' requests go between
the pieces. Only models whose rows are independent are cut (those that allow
batching: a model with ``"batching": false`` in params.json scores a request whole),
and only requests with one binary numeric input of at least two pieces; any other
request that reaches this handler (several inputs, BYTES, too few rows) is buffered
and scored whole. Only bodies worth it come here at all (:func:`worth_streaming`;
the rest go to the buffered handler). The tensor's bytes are received straight into a
buffer of its declared size, allocated after the header has been checked (the
header's shapes bound it).

No HTTP framework here: handlers/v2.py reads the body into :meth:`StreamedInfer.body_buffer`
and writes the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Mapping

import numpy as np

from ...v2binary import HEADER_LENGTH
from ...worker.wire import uninitialized
from ..batching import rows_independent
from ..codecs import check_json_values
from ..errors import BadRequest, ErrorKind, WorkerError, of_model
from ..keys import Grant
from ..modelfiles import ModelVersion
from ..service import TFaaS
from ..tensors import json_object
from ..timing import Stages
from .v2 import (
    InferAnswer,
    InferRequest,
    decode_infer_parts,
    encode_answer,
    header_length_of,
    model_inputs,
    run_request,
)

#: About this many tensor bytes go to the worker per piece while the body arrives.
#: In process the seed model scores pieces of 2,048 to 100,000 rows at the same rate;
#: end to end (100,000 rows, benchmarks/run --bulk) pieces of 0.5, 1, 2, 3 and 4 MiB
#: gave 0.78-0.87, 0.81-0.91, 0.94-0.98, 0.93-1.00 and 0.83-0.98 M rows/s: fewer
#: worker calls pay, until the last piece, scored after the body's end, grows.
PIECE_BYTES = 2 << 20
#: Bodies from this size on are streamed: the smallest that can make two pieces.
STREAM_MIN_BYTES = 2 * PIECE_BYTES


def worth_streaming(headers: Mapping[str, str]) -> bool:
    """Whether a request, by its headers, is a binary one big enough to be cut, with a
    plain body of a declared length (no transfer or content coding to undo)."""
    length = headers.get("Content-Length", "")
    return (headers.get(HEADER_LENGTH) is not None and length.isdigit()
            and int(length) >= STREAM_MIN_BYTES
            and "Transfer-Encoding" not in headers
            and headers.get("Content-Encoding", "identity") == "identity")


def streamable(doc: dict[str, Any]) -> bool:
    """Whether a request can be cut into row pieces: one input, binary, numeric."""
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        return False
    params = inputs[0].get("parameters")
    return (isinstance(params, dict) and "binary_data_size" in params
            and inputs[0].get("datatype") != "BYTES")


class StreamedInfer:
    """One V2 infer request: its JSON header goes to :meth:`start`, the rest of its body
    is read into :meth:`body_buffer` (:meth:`advanced` counts it), and :meth:`answer`
    answers it once the body is complete.

    ``grant`` is the request's key grant (None: a Jupyter login) and ``stages`` its
    ``Server-Timing`` record, which every model call of the request adds to.
    Errors found while the body arrives are kept and raised by :meth:`answer`, so the
    client gets them as an ordinary error response once it has sent its body.
    """

    def __init__(self, service: TFaaS, name: str, version: str | None, *,
                 header_length: str, content_length: int,
                 grant: Grant | None = None, stages: Stages | None = None) -> None:
        self.service = service
        self.name = name
        self.version = version
        self._grant = grant
        self._stages = stages
        self._header_length = header_length_of(header_length, content_length)
        self._binary_length = content_length - self._header_length
        self._doc: dict[str, Any] | None = None
        #: The request, once decoded against the buffer (when it was checked early).
        self._request: InferRequest | None = None
        #: The tensor bytes after the header, allocated at their declared size.
        self._binary: np.ndarray | None = None
        self._filled = 0
        self._error: BaseException | None = None
        self._admission: contextlib.ExitStack | None = None
        # set when the request is cut into pieces
        self._mv: ModelVersion | None = None
        self._signature: dict[str, Any] = {}
        self._tensor: np.ndarray | None = None
        self._row_bytes = 0
        self._piece_rows = 0
        self._next_row = 0
        self._pieces: list[asyncio.Future[list[np.ndarray]]] = []

    # -- the body arriving ----------------------------------------------------------

    @property
    def header_length(self) -> int:
        """How many bytes the body's JSON header takes (its first bytes)."""
        return self._header_length

    async def start(self, head: bytes) -> None:
        """Take the JSON header; the model is looked up and loaded, and the tensor's
        buffer allocated, before the rest of the body is read."""
        try:
            check_json_values(head, self.service.limits.max_values)
            doc = json_object(head, "the inference request", "'inputs'")
            self._doc = doc
            if streamable(doc):
                await self._plan_pieces(doc)
            if self._binary is None:
                self._binary = uninitialized(self._binary_length)
        except BaseException as exc:  # kept for answer(): the client sends its body first
            self._fail(exc)

    def body_buffer(self) -> memoryview | None:
        """Where the next bytes of the body go (the unfilled rest of the tensor's
        buffer); None once the request has failed: the rest of its body is not kept."""
        if self._error is not None or self._binary is None:
            return None
        return self._binary.data[self._filled:]

    def advanced(self, nbytes: int) -> None:
        """``nbytes`` more of the body are in the :meth:`body_buffer`: the pieces of rows
        now complete go to the model."""
        self._filled += nbytes
        if self._tensor is not None:
            ready = self._filled // self._row_bytes
            while ready - self._next_row >= self._piece_rows:
                self._send_piece(self._next_row + self._piece_rows)

    async def _plan_pieces(self, doc: dict[str, Any]) -> None:
        """Check the request against the model now, and cut it when that pays."""
        binary = uninitialized(self._binary_length)
        request = self._decode(doc, binary)
        mv = self.service.resolve(self.name, self.version, grant=self._grant)
        self._admit()
        with of_model(mv.name):
            signature = await self.service.signature(mv, self._stages)
            (tensor,) = model_inputs(mv, signature, request.inputs)
        self._binary, self._request = binary, request
        rows = int(tensor.shape[0]) if tensor.ndim else 0
        row_bytes = tensor.nbytes // rows if rows else 0
        piece_rows = max(1, PIECE_BYTES // row_bytes) if row_bytes else 0
        if not rows_independent(mv.params) or not piece_rows or rows < 2 * piece_rows:
            return  # scored whole once the body is complete
        self._mv, self._signature, self._tensor = mv, signature, tensor
        self._row_bytes, self._piece_rows = row_bytes, piece_rows

    def _send_piece(self, end: int) -> None:
        assert self._tensor is not None and self._mv is not None
        piece = self._tensor[self._next_row:end]
        self._next_row = end
        task = asyncio.ensure_future(self.service.run(self._mv, [piece], self._stages))
        task.add_done_callback(self._piece_done)
        self._pieces.append(task)

    def _piece_done(self, task: asyncio.Task[Any]) -> None:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            self._fail(failure)

    # -- the answer --------------------------------------------------------------------

    async def answer(self) -> InferAnswer:
        """The request's answer, once the body is complete."""
        try:
            return await self._answer()
        finally:
            self.close()

    async def _answer(self) -> InferAnswer:
        if self._error is not None:
            raise self._error
        # the header was complete, or an error was kept: Tornado delivers the whole
        # Content-Length, and the header is no longer than it
        assert self._doc is not None and self._binary is not None
        if self._filled != len(self._binary):
            raise BadRequest(f"the body ended after {self._filled} of its "
                             f"{len(self._binary)} tensor bytes")
        self._admit()
        request = self._request or self._decode(self._doc, self._binary)
        if self._tensor is None:  # not cut: scored as a whole
            mv = self.service.resolve(self.name, self.version, grant=self._grant)
            return await run_request(self.service, mv, request, self._stages)
        assert self._mv is not None
        rows = int(self._tensor.shape[0])
        if self._next_row < rows:
            self._send_piece(rows)
        with of_model(self._mv.name):
            parts = await asyncio.gather(*self._pieces)
            outputs = _concatenate(parts, self._mv.name)
            return encode_answer(self._mv, self._signature, outputs, request, rows)

    # -- ends ----------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel what is still running (a client that left, an error) and give back the
        request's prediction slot."""
        for task in self._pieces:
            task.cancel()
        if self._admission is not None:
            self._admission.close()
            self._admission = None

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._tensor = None  # no more pieces
        for task in self._pieces:
            task.cancel()

    def _decode(self, doc: dict[str, Any], binary: np.ndarray) -> InferRequest:
        limits = self.service.limits
        return decode_infer_parts(doc, binary.data, max_rows=limits.max_rows,
                                  max_values=limits.max_values)

    def _admit(self) -> None:
        if self._admission is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self.service.admit())
            self._admission = stack


def _concatenate(parts: list[list[np.ndarray]], model: str) -> list[np.ndarray]:
    """The pieces' outputs as one array per output, rows in order."""
    outputs = []
    for index in range(len(parts[0])):
        arrays = [np.asarray(part[index]) for part in parts]
        if any(a.ndim == 0 for a in arrays):
            raise WorkerError(
                f"model {model!r} answers output {index} without a row per input row; "
                'set "batching": false in its params.json to score requests whole',
                ErrorKind.MODEL,
            )
        outputs.append(np.concatenate(arrays))
    return outputs
