"""Request and response codecs: JSON, protobuf and images to and from numpy.

The hot paths avoid per-value Python work: JSON goes through orjson straight
into a numpy array, a packed protobuf ``Row.value`` is viewed with
``np.frombuffer``, and responses are written from the arrays in one call.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from ..tfaas_pb2 import Row
from .errors import BadRequest, PayloadTooLarge

_F32 = np.dtype("<f4")


@dataclass
class PredictRequest:
    """A decoded prediction request: rows of values for one model.

    JSON values are float64 (integers up to 2**53 stay exact for integer inputs), proto
    values float32 (the protocol's type); the service casts them to each input's dtype.
    """

    model: str | None
    values: np.ndarray  # 2-D: (rows, values per row)
    keys: Sequence[str] | None = None
    version: Any = None
    single_row: bool = True


def _as_rows(values: Any) -> tuple[np.ndarray, bool]:
    if not isinstance(values, list):
        raise BadRequest("'values' must be a list of numbers (or a list of rows)")
    if not values:
        raise BadRequest("'values' is empty")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(
            "'values' must be numbers, or rows of numbers all of the same length"
        ) from None
    if array.ndim == 1:
        rows, single = array.reshape(1, -1), True
    elif array.ndim == 2:
        rows, single = array, False
    else:
        raise BadRequest("'values' must be a list of numbers or a list of rows (2-D at most)")
    if not np.isfinite(rows.astype(np.float32)).all():  # NaN, null, beyond float32's range
        raise BadRequest("'values' must be finite numbers (no NaN, Infinity or null)")
    return rows, single


def decode_json_request(body: bytes, *, max_rows: int | None = None) -> PredictRequest:
    """Decode the original's ``{"keys": [...], "values": [...], "model": "..."}``.

    ``values`` may also be a list of rows; the answer then has one list per row.
    """
    if not body:
        raise BadRequest("empty request body: expected JSON with 'values' and 'model'")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
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
    rows, single = _as_rows(doc["values"])
    if max_rows is not None and rows.shape[0] > max_rows:
        raise PayloadTooLarge(
            f"request has {rows.shape[0]} rows; the limit is {max_rows} rows per request"
        )
    return PredictRequest(
        model=model or None, values=rows, keys=keys or None,
        version=doc.get("version"), single_row=single,
    )


def encode_json_rows(outputs: np.ndarray, single_row: bool) -> bytes:
    """The original's answer: a list of floats for one row, a list of lists for several."""
    data = outputs[0] if single_row else outputs
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_json(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


# -- protobuf ------------------------------------------------------------------


def decode_proto_row(body: bytes, *, max_values: int | None = None) -> PredictRequest:
    """Decode a serialized ``tfaaspb.Row`` (keys, values, model).

    The protobuf runtime's C parser reads the message (packed or unpacked values
    alike) and numpy copies the values out in C: no Python work per value. The keys
    are handed on as the runtime's container, read only where a model maps keys.
    """
    if not body:
        raise BadRequest("unable to unmarshal Row: empty body")
    try:
        row = Row.FromString(body)
    except DecodeError as exc:
        raise BadRequest(f"unable to unmarshal Row: {exc}") from None
    count = len(row.value)
    if not count:
        raise BadRequest("Row has no values")
    if max_values is not None and count > max_values:
        raise PayloadTooLarge(f"Row has {count} values; the limit is {max_values}")
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


def encode_proto_predictions(values: np.ndarray, labels: Sequence[str] | None = None) -> bytes:
    """Serialize one row of outputs as ``tfaaspb.Predictions``: one ``Class`` per value.

    Unlabelled classes are built in one numpy call (7 bytes each, as the original);
    labelled ones carry their label, which the original left empty.
    """
    flat = np.ascontiguousarray(values, dtype=_F32).reshape(-1)
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
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadRequest("Invalid image: the image part is empty")
    try:
        # only the png and jpeg decoders are ever tried on a request's bytes
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as img:
            if img.format not in ("PNG", "JPEG"):
                raise BadRequest(f"Invalid image: expected png or jpg, got {img.format}")
            width, height = img.size
            if width * height > max_pixels:
                raise PayloadTooLarge(
                    f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels"
                )
            img.load()
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and (height, width) != size:
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(img, dtype=np.float32)
    except UnidentifiedImageError:
        raise BadRequest("Invalid image: expected png or jpg") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(f"Invalid image: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"image too large: {exc}") from None
    if array.ndim == 2:
        array = array[:, :, None]
    return array[None, ...]


def top_labels(probabilities: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict]:
    """The original's image answer: the top labels with their probabilities, best first."""
    flat = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    n = min(len(labels), flat.size)
    order = np.argsort(-flat[:n], kind="stable")[: min(k, n)]
    return [{"label": labels[i], "probability": flat[i]} for i in order]
