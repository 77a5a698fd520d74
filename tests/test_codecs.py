"""The wire codecs without a server: numbers keep their dtype both ways."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfaas_jupyter.server import codecs
from tfaas_jupyter.server.errors import BadRequest, PayloadTooLarge
from tfaas_jupyter.tfaas_pb2 import Predictions

BIG = 2**53 + 1


def test_json_integers_beyond_float64_are_read_exactly() -> None:
    doc = {"model": "m", "values": [[1_700_000_001, BIG], [-BIG, 2**63 - 1]]}
    request = codecs.decode_json_request(json.dumps(doc).encode())
    assert request.values.dtype == np.int64
    assert request.values.tolist() == doc["values"]
    # small integers, or any fraction: float64 as before (the shaper refuses big ones)
    small = codecs.decode_json_request(b'{"values": [1700000001, 2]}')
    assert small.values.dtype == np.float64 and small.values.tolist() == [[1_700_000_001, 2]]
    mixed = codecs.decode_json_request(f'{{"values": [{BIG}, 0.5]}}'.encode())
    assert mixed.values.dtype == np.float64
    rounded = codecs.decode_json_request(f'{{"values": [{BIG}, 1]}}'.encode())
    assert rounded.values.dtype == np.int64 and rounded.values.tolist() == [[BIG, 1]]
    beyond = codecs.decode_json_request(f'{{"values": [{2**63}]}}'.encode())
    assert beyond.values.dtype == np.uint64 and beyond.values.tolist() == [[2**63]]
    # numbers beyond float32 are not the codec's business (a float64 input takes them)
    assert codecs.decode_json_request(b'{"values": [1e300]}').values.tolist() == [[1e300]]
    with pytest.raises(BadRequest, match="not null"):
        codecs.decode_json_request(b'{"values": [1, null]}')


def test_json_outputs_keep_their_dtype() -> None:
    f32 = np.array([[0.1, 1 / 3]], np.float32)
    # the common case is byte for byte what it was: float32 as orjson prints it
    assert codecs.encode_json_rows([f32], True) == b"[0.1,0.33333334]"
    assert codecs.encode_json_rows([f32, f32], False) == (
        b"[[0.1,0.33333334,0.1,0.33333334]]"
    )
    ids = np.array([[1_700_000_001, BIG]], np.int64)
    assert json.loads(codecs.encode_json_rows([ids], True)) == [1_700_000_001, BIG]
    f64 = np.array([[0.1, 1 / 3]], np.float64)
    assert json.loads(codecs.encode_json_rows([f64], True)) == [0.1, 1 / 3]
    # float32 next to float64: joined as float64, exactly the float32 values
    joined = json.loads(codecs.encode_json_rows([f32, f64], True))
    assert joined == [float(np.float32(0.1)), float(np.float32(1 / 3)), 0.1, 1 / 3]
    # int64 next to float32: no dtype holds both; each keeps its own
    assert codecs.encode_json_rows([ids, f32], True) == (
        f"[1700000001,{BIG},0.1,0.33333334]".encode()
    )
    flags = np.array([[True, False]])
    assert codecs.encode_json_rows([flags], True) == b"[1,0]"
    two = np.array([[1], [2]], np.int64)
    assert json.loads(codecs.encode_json_rows([two, np.array([[0.5], [1.5]])], False)) == [
        [1, 0.5], [2, 1.5]
    ]


def test_proto_answers() -> None:
    f32 = np.array([[0.25, 0.75]], np.float32)
    raw = codecs.encode_proto_predictions([f32])
    assert len(raw) == 14  # 7 bytes a class, as the original
    parsed = Predictions.FromString(raw).prediction
    assert [c.probability for c in parsed] == [0.25, 0.75]
    assert not parsed[0].HasField("integer") and not parsed[0].HasField("number")

    ids = np.array([[1_700_000_001, BIG, -5, 0]], np.int64)
    parsed = Predictions.FromString(
        codecs.encode_proto_predictions([ids], ["a", "b", "c", "d"])
    ).prediction
    assert [c.integer for c in parsed] == [1_700_000_001, BIG, -5, 0]
    assert all(c.HasField("integer") for c in parsed)  # 0 too
    assert [c.label for c in parsed] == ["a", "b", "c", "d"]
    assert parsed[0].probability == np.float32(1_700_000_001)

    f64 = np.array([[0.1, 1e300]], np.float64)
    parsed = Predictions.FromString(codecs.encode_proto_predictions([f32, f64])).prediction
    assert [c.probability for c in parsed[:2]] == [0.25, 0.75]
    assert [c.number for c in parsed[2:]] == [0.1, 1e300]
    assert parsed[2].probability == np.float32(0.1) and parsed[3].probability == np.inf

    with pytest.raises(BadRequest, match="int64"):
        codecs.encode_proto_predictions([np.array([[2**64 - 1]], np.uint64)])


def test_json_values_are_counted_before_decoding() -> None:
    """A body within ``max_values`` decodes; one that may hold more is a 413 naming the
    setting, whatever the nesting, and a small body is never counted at all."""
    rows = [[float(i), 0.5] for i in range(10)]
    body = json.dumps({"model": "m", "values": rows}).encode()  # 2 members, 10 rows, 20 numbers
    assert codecs.decode_json_request(body, max_values=32).values.shape == (10, 2)
    for refused in (body, b'{"values": [' + b",".join([b"[0]"] * 40) + b"]}"):
        with pytest.raises(PayloadTooLarge, match="TFaaSApp.max_request_values") as caught:
            codecs.decode_json_request(refused, max_values=31)
        assert caught.value.status == 413
    codecs.check_json_values(b"[" * 10 + b"," * 10, 20)  # 20 bytes: at most 20 values
    with pytest.raises(PayloadTooLarge):
        codecs.check_json_values(b"[" * 10 + b"," * 11, 20)
    codecs.check_json_values(b"[1,2,3] and binary ,,,,,,,", 3, end=7)  # the JSON part only


def test_proto_keys_and_values_are_counted_before_parsing() -> None:
    from tfaas_jupyter.tfaas_pb2 import Row

    packed = Row(value=[1.0] * 50, model="m").SerializeToString()
    assert codecs.decode_proto_row(packed, max_values=51).values.shape == (1, 50)
    with pytest.raises(PayloadTooLarge, match="the Row has 50 values and 0 keys"):
        codecs.decode_proto_row(packed, max_values=20)  # no key or unpacked value: parsed
    assert codecs._proto_elements(packed, 10**6) == 51  # 50 values and the model
    keys = b"\x15\x00\x00\x80\x3f" + b"\x0a\x00" * 100  # one unpacked value, 100 empty keys
    assert codecs._proto_elements(keys, 10**6) == 101
    assert codecs._proto_elements(keys, 10) == 11  # stops past the limit
    with pytest.raises(PayloadTooLarge, match="more than 100 keys, values and fields"):
        codecs.decode_proto_row(keys, max_values=100)  # 101 tags: counted, never parsed
    parsed = codecs.decode_proto_row(keys, max_values=101)
    assert parsed.values.tolist() == [[1.0]] and len(parsed.keys) == 100
    with pytest.raises(BadRequest, match="truncated"):
        codecs._proto_elements(b"\x0a\x00" * 2 + b"\x80", 10)
    with pytest.raises(BadRequest, match="unable to unmarshal Row"):
        codecs.decode_proto_row(b"\x0a\x00" * 2 + b"\x80", max_values=2)


def test_v2_bytes_elements_are_counted_before_they_are_made() -> None:
    import struct

    from tfaas_jupyter.server.protocols import v2

    elements = b"".join(struct.pack("<I", 1) + b"x" for _ in range(12))
    header = json.dumps({"inputs": [{
        "name": "s", "shape": [1, 12], "datatype": "BYTES",
        "parameters": {"binary_data_size": len(elements)}}]}).encode()
    request = v2.decode_infer_request(header + elements, str(len(header)), max_values=12)
    assert request.inputs[0].array.tolist() == [[b"x"] * 12]
    with pytest.raises(PayloadTooLarge, match="more than 11 BYTES elements"):
        v2.decode_infer_request(header + elements, str(len(header)), max_values=11)
    assert v2._count_bytes_elements(memoryview(elements), 100) == 12
    assert v2._count_bytes_elements(memoryview(elements), 5) == 6  # stops past the limit
