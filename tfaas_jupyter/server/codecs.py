"""Request and response codecs: JSON, protobuf and images to and from numpy.

The hot paths avoid per-value Python work: JSON goes through orjson straight
into a numpy array, the protobuf runtime copies a ``Row``'s values into numpy in C,
and responses are written from the arrays in one call.

Numbers keep their dtype: JSON integers beyond what a float64 holds exactly are read
as integers, and outputs are written in the model's own dtypes (int64 as JSON
integers, float64 with all its digits, float32 as the original server wrote them).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from ..tfaas_pb2 import Predictions, Row
from .errors import BadRequest, PayloadTooLarge
from .names import VERSION_RULE

_F32 = np.dtype("<f4")

#: From this magnitude on, a float64 may be a rounded integer (2**53 + 1 reads as 2**53).
_FLOAT64_EXACT_INTS = float(2**53)


@dataclass
class PredictRequest:
    """A decoded prediction request: rows of values for one model.

    JSON values are float64, or int64 when the request holds integers only and one is
    beyond 2**53 (so every integer is exact); proto values are float32 (the protocol's
    type). The service casts them to each input's dtype exactly, or refuses (400).
    """

    model: str | None
    values: np.ndarray  # 2-D: (rows, values per row)
    keys: Sequence[str] | None = None
    version: Any = None
    single_row: bool = True


def _has_bool(values: list[Any]) -> bool:
    return any(v is True or v is False or (isinstance(v, list) and _has_bool(v)) for v in values)


def _as_rows(values: Any, *, may_hold_bools: bool = True) -> tuple[np.ndarray, bool]:
    if not isinstance(values, list):
        raise BadRequest("'values' must be a list of numbers (or a list of rows)")
    if not values:
        raise BadRequest("'values' is empty")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        array = np.asarray([], dtype=object)
    # numbers only: numpy would read "1.5" (a string) or true as a number
    if array.dtype.kind not in "iuf" or (may_hold_bools and _has_bool(values)):
        raise BadRequest(
            "'values' must be numbers (not null, strings or booleans), or rows of numbers "
            "all of the same length"
        )
    array = array.astype(np.float64, copy=False)
    if array.ndim == 1:
        rows, single = array.reshape(1, -1), True
    elif array.ndim == 2:
        rows, single = array, False
    else:
        raise BadRequest("'values' must be a list of numbers or a list of rows (2-D at most)")
    # one pass for both checks: the largest magnitude is NaN or infinite when a value
    # is, and at 2**53 or more when integers may have been rounded on the way in
    biggest = np.abs(rows).max() if rows.size else 0.0
    if not biggest < _FLOAT64_EXACT_INTS:
        if not np.isfinite(biggest):  # null
            raise BadRequest("'values' must be finite numbers (no NaN, Infinity or null)")
        rows = _exact_integers(values, rows)
    return rows, single


def _exact_integers(values: list[Any], rows: np.ndarray) -> np.ndarray:
    """``values`` as int64 (uint64 beyond) when they are all integers: the float64
    ``rows`` may have rounded some. Otherwise ``rows`` (an integer input refuses the
    big ones then)."""
    try:
        exact = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return rows
    if exact.dtype.kind not in "iu" or exact.size != rows.size:
        return rows
    return exact.reshape(rows.shape)


#: The setting that bounds the values of one JSON or proto request (named in its 413).
MAX_VALUES_SETTING = "TFaaSApp.max_request_values"


def _too_many_values(what: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} the limit is {limit} values per request ({MAX_VALUES_SETTING}); "
        "send fewer rows per request, or V2 binary tensors"
    )


def check_json_values(body: bytes | bytearray, max_values: int | None,
                      end: int | None = None) -> None:
    """Refuse (413) a JSON body (``body[:end]``) that may hold more than ``max_values``
    values, before it is decoded: a 20 MB body of ``0,0,...`` would otherwise become
    10 million Python objects.

    Every element of a JSON array or object but the first follows a comma, and each
    array or object has one first element, so commas plus brackets plus braces bound
    the number of elements (commas inside strings count too: only ever more). Three
    ``bytes.count`` calls: no allocation, about a microsecond on a one-row request.
    """
    if max_values is None:
        return
    end = len(body) if end is None else end
    if end <= max_values:  # not even one byte per value
        return
    bound = body.count(b",", 0, end) + body.count(b"[", 0, end) + body.count(b"{", 0, end)
    if bound > max_values:
        raise _too_many_values(
            f"the request may hold up to {bound} values (its commas and brackets);", max_values
        )


def decode_json_request(body: bytes, *, max_rows: int | None = None,
                        max_values: int | None = None) -> PredictRequest:
    """Decode the original's ``{"keys": [...], "values": [...], "model": "..."}``.

    ``values`` may also be a list of rows; the answer then has one list per row.
    """
    if not body:
        raise BadRequest("empty request body: expected JSON with 'values' and 'model'")
    check_json_values(body, max_values)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        field = _huge_number_field(body) if "number" in str(exc) else None
        if field == "version":
            raise BadRequest(f"'version' must be {VERSION_RULE}: it holds a number "
                             "too large to read") from None
        if field is not None:
            raise BadRequest(f"unable to unmarshal Row: {field!r} holds a number too large "
                             "to read (beyond the range of a float64)") from None
        raise BadRequest(f"unable to unmarshal Row: invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest("unable to unmarshal Row: expected a JSON object")
    if "values" not in doc:
        raise BadRequest("request has no 'values'")
    model = doc.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string")
    keys = doc.get("keys")
    if keys is not None and (
        not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
    ):
        raise BadRequest("'keys' must be a list of strings")
    # (the walk for JSON booleans among the numbers only when the body has one at all)
    rows, single = _as_rows(doc["values"], may_hold_bools=b"true" in body or b"false" in body)
    if max_rows is not None and rows.shape[0] > max_rows:
        raise PayloadTooLarge(
            f"request has {rows.shape[0]} rows; the limit is {max_rows} rows per request"
        )
    return PredictRequest(
        model=model or None, values=rows, keys=keys or None,
        version=doc.get("version"), single_row=single,
    )


def _huge_number_field(body: bytes) -> str | None:
    """The top-level field of a JSON object holding a number orjson refuses as beyond a
    float64 (an integer of 310 digits): read again by the standard library, every
    number as a float (the huge one as infinity). None when there is none."""
    try:
        doc = json.loads(body, parse_int=float, parse_float=float)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    for key, value in doc.items():
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, float) and math.isinf(item):
                return str(key)
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())
    return None


def _exact_in(dtype: np.dtype, common: np.dtype) -> bool:
    """Whether every value of ``dtype`` is exactly a value of ``common``."""
    if dtype.kind in "iu" and common.kind == "f":
        return bool(np.iinfo(dtype).bits - (dtype.kind == "i") <= np.finfo(common).nmant + 1)
    return bool(np.can_cast(dtype, common, "safe"))


def output_table(outputs: Sequence[np.ndarray]) -> np.ndarray | list[list[Any]]:
    """The outputs (each ``[rows, values]``) side by side: one row of values per input
    row, as the original answered.

    Booleans are written as 0 and 1. One output, or outputs of one dtype, stay an
    array of that dtype. Outputs of
    different dtypes are joined in the narrowest dtype that holds them all exactly
    (float32 and float64 in float64, int32 and float64 in float64); when there is none
    (int64 and a float), each row is a list of numpy scalars, each of its own dtype.
    """
    outputs = [o.view(np.uint8) if o.dtype.kind == "b" else o for o in outputs]
    if len(outputs) == 1:
        return outputs[0]
    dtypes = {o.dtype for o in outputs}
    if len(dtypes) == 1:
        return np.concatenate(outputs, axis=1)
    common = np.result_type(*dtypes)
    if all(_exact_in(d, common) for d in dtypes):
        return np.concatenate([o.astype(common, copy=False) for o in outputs], axis=1)
    return [[v for o in outputs for v in o[i]] for i in range(outputs[0].shape[0])]


def encode_json_rows(outputs: Sequence[np.ndarray], single_row: bool) -> bytes:
    """The original's answer: a list of values for one row, a list of lists for several."""
    table = output_table(outputs)
    return orjson.dumps(table[0] if single_row else table, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_json(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# -- protobuf ------------------------------------------------------------------


_VARINT_END = 0x80
_ROW_VALUE_FIELD = Row.DESCRIPTOR.fields_by_name["value"].number
#: The first byte of a key field, and of an unpacked value field, in a serialized Row.
_KEY_TAG = bytes([Row.DESCRIPTOR.fields_by_name["key"].number << 3 | 2])
_VALUE_TAG = bytes([_ROW_VALUE_FIELD << 3 | 5])


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data):
            raise BadRequest("unable to unmarshal Row: truncated message")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < _VARINT_END:
            return value, offset
        shift += 7
        if shift > 63:
            raise BadRequest("unable to unmarshal Row: varint too long")


def _proto_elements(body: bytes, limit: int) -> int:
    """How many keys, values and other fields a serialized ``Row`` holds, counted on its
    wire format without building it; the count stops past ``limit``.

    The parser keeps a key in about 40 bytes whatever its length (a 2-byte empty key
    included), so a 20 MB body of keys would take 400 MB to parse. Packed values
    count 4 bytes each; every other field counts one.
    """
    count = offset = 0
    while offset < len(body) and count <= limit:
        tag, offset = _varint(body, offset)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, offset = _varint(body, offset)
        elif wire_type == 1:
            offset += 8
        elif wire_type == 5:
            offset += 4
        elif wire_type == 2:
            length, offset = _varint(body, offset)
            offset += length
            if field == _ROW_VALUE_FIELD:
                count += length // 4 - 1
        else:
            raise BadRequest(f"unable to unmarshal Row: wire type {wire_type} is not supported")
        count += 1
    return count


def decode_proto_row(body: bytes, *, max_values: int | None = None) -> PredictRequest:
    """Decode a serialized ``tfaaspb.Row`` (keys, values, model).

    The protobuf runtime's C parser reads the message (packed or unpacked values
    alike) and numpy copies the values out in C: no Python work per value. The keys
    are handed on as the runtime's container, read only where a model maps keys.
    Before the parse, the fields that cost the parser more memory than their bytes
    (keys, about 40 bytes each; unpacked values, which it grows into an array) are
    bounded by their tag bytes (``0x0a``, ``0x15``): only a body with more of those
    than ``max_values`` has its fields counted exactly (:func:`_proto_elements`, a
    Python walk that stops past the limit), and is refused if they are too many.
    """
    if not body:
        raise BadRequest("unable to unmarshal Row: empty body")
    if (max_values is not None and len(body) > 2 * max_values
            and body.count(_KEY_TAG) + body.count(_VALUE_TAG) > max_values):
        if _proto_elements(body, max_values) > max_values:
            raise _too_many_values(f"the Row has more than {max_values} keys, values and fields;",
                                   max_values)
    try:
        row = Row.FromString(body)
    except DecodeError as exc:
        raise BadRequest(f"unable to unmarshal Row: {exc}") from None
    count = len(row.value)
    if not count:
        raise BadRequest("Row has no values")
    if max_values is not None and count + len(row.key) > max_values:
        raise _too_many_values(f"the Row has {count} values and {len(row.key)} keys;",
                               max_values)
    values = np.array(row.value, dtype=np.float32).reshape(1, -1)
    if not np.isfinite(values).all():
        raise BadRequest("Row values must be finite numbers (no NaN or Infinity)")
    return PredictRequest(
        model=row.model or None, values=values, keys=row.key or None, single_row=True,
    )


def _varint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_UNLABELLED_CLASS = np.dtype([("head", "S3"), ("p", "<f4")])
_INT64_MAX = np.iinfo(np.int64).max


def encode_proto_predictions(outputs: Sequence[np.ndarray],
                             labels: Sequence[str] | None = None) -> bytes:
    """Serialize the first row of the outputs as ``tfaaspb.Predictions``: one ``Class``
    per value, labelled in order when the model has labels.

    float32 outputs are written as the original did (unlabelled classes built in one
    numpy call, 7 bytes each). Other dtypes fill ``probability`` with the nearest
    float32 too, for the original's clients, plus the exact value: ``integer`` for
    integer and boolean outputs, ``number`` for float64 ones. An unsigned value
    beyond int64 is refused (400): no field holds it exactly.
    """
    rows = [np.asarray(o)[0].reshape(-1) for o in outputs]
    if all(r.dtype == _F32 for r in rows):
        return _float32_predictions(rows[0] if len(rows) == 1 else np.concatenate(rows),
                                    labels)
    message = Predictions()
    index = 0
    for row in rows:
        kind = row.dtype.kind
        if kind == "u" and row.size and int(row.max()) > _INT64_MAX:
            raise BadRequest(
                "an output value is beyond int64, which the proto answer cannot hold "
                "exactly; ask /json instead"
            )
        with np.errstate(over="ignore"):
            approx = row.astype(_F32).tolist()
        exact = row.tolist()
        for near, value in zip(approx, exact):
            entry = message.prediction.add(probability=near)
            if labels and index < len(labels):
                entry.label = labels[index]
            if kind in "iub":
                entry.integer = int(value)
            elif row.dtype.itemsize > 4:
                entry.number = value
            index += 1
    return bytes(message.SerializeToString())


def _float32_predictions(flat: np.ndarray, labels: Sequence[str] | None) -> bytes:
    flat = np.ascontiguousarray(flat, dtype=_F32)
    if not labels:
        out = np.empty(flat.size, dtype=_UNLABELLED_CLASS)
        out["head"] = b"\x0a\x05\x15"
        out["p"] = flat
        return out.tobytes()
    raw = flat.tobytes()
    parts = []
    for i in range(flat.size):
        label = labels[i].encode("utf-8") if i < len(labels) else b""
        inner = (b"\x0a" + _varint_bytes(len(label)) + label if label else b"") + b"\x15"
        inner += raw[4 * i : 4 * i + 4]
        parts.append(b"\x0a" + _varint_bytes(len(inner)) + inner)
    return b"".join(parts)


# -- images --------------------------------------------------------------------


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def _open_image(data: bytes) -> Any:
    """A png or jpg opened by its own Pillow plugin: its header read, nothing decoded.

    The plugin classes are used directly so that only the png and jpeg parsers ever
    see a request's bytes, and Pillow's own decompression-bomb check (its
    ``MAX_IMAGE_PIXELS``, a process-wide setting) never answers in place of
    ``max_image_pixels``."""
    from PIL import JpegImagePlugin, PngImagePlugin

    if not data:
        raise BadRequest("Invalid image: the image part is empty")
    if data.startswith(_PNG_MAGIC):
        opener: Any = PngImagePlugin.PngImageFile
    elif data.startswith(_JPEG_MAGIC):
        opener = JpegImagePlugin.JpegImageFile
    else:
        raise BadRequest("Invalid image: expected png or jpg")
    try:
        return opener(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"Invalid image: {exc}") from None


def image_size(data: bytes, *, max_pixels: int) -> tuple[int, int]:
    """(height, width) of a png or jpg from its header alone, refused (413 naming
    ``max_image_pixels``, as every size limit is) when it has more pixels than that."""
    with _open_image(data) as img:
        width, height = img.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image of {width}x{height} pixels exceeds max_image_pixels "
            f"({max_pixels} pixels)"
        )
    return height, width


def decode_image(
    data: bytes,
    *,
    channels: int,
    size: tuple[int, int] | None,
    max_pixels: int,
) -> np.ndarray:
    """Decode a png or jpg into a float32 array [1, H, W, C] of raw 0-255 pixel values.

    As the original, pixels are not normalised. Beyond the original, the image is
    resized to ``size`` (height, width) when the model's input has a fixed size.
    The size is checked (:func:`image_size`) before anything is decoded.
    """
    from PIL import Image

    image_size(data, max_pixels=max_pixels)
    try:
        with _open_image(data) as img:
            width, height = img.size
            img.load()
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and (height, width) != size:
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.float32)
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"Invalid image: {exc}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return array[None, ...]


def encode_image_answer(outputs: Sequence[np.ndarray], filename: str | None,
                        labels: Sequence[str] | None) -> bytes:
    """The original's ``/image`` answer: the top labels, or the outputs' one row."""
    row = output_table(outputs)[0]
    if not labels:
        return encode_json(row)
    return encode_json({"filename": filename, "labels": top_labels(np.asarray(row), labels)})


def top_labels(probabilities: np.ndarray, labels: Sequence[str], k: int = 5
               ) -> list[dict[str, Any]]:
    """The original's image answer: the top labels with their probabilities, best first
    (in the model's dtype)."""
    flat = np.asarray(probabilities).reshape(-1)
    n = min(len(labels), flat.size)
    order = np.argsort(-flat[:n], kind="stable")[: min(k, n)]
    return [{"label": labels[i], "probability": flat[i]} for i in order]
