"""The worker's typed operations on the wire: each request's frame header parses back
into the same request, and a header that is not one is refused with a message naming
what is wrong (the worker answers it as the request's bad input)."""

from __future__ import annotations

from typing import Any

import pytest

from tfaas_jupyter.worker import ops

REQUESTS = [
    ops.Ping(),
    ops.Load("vk-1", "/models/vk/1/model.pb", "graphdef", {"inputNode": "x"}),
    ops.Predict("vk-1"),
    ops.Predict("vk-1", [None, {"path": "/dev/shm/r", "offset": 0}]),
    ops.Export("vk-1", "/models/vk/1", "savedmodel", {}, "/tmp/out"),
    ops.Unload("vk-"),
    ops.Status(),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_a_request_parses_back_from_its_header(request_: Any) -> None:
    header = ops.request_header(request_)
    assert header["op"] == request_.op.value
    assert "id" not in header
    assert None not in header.values()  # unset optional members do not travel
    assert ops.parse_request({**header, "id": 7}) == request_


@pytest.mark.parametrize("header, message", [
    ({"op": "nope"}, "unknown op 'nope'"),
    ({}, "unknown op 'None'"),
    ({"op": ["predict"]}, "unknown op '['predict']'"),
    ({"op": "predict"}, "request is missing 'key'"),
    ({"op": "load", "key": "k", "format": "f", "params": {}}, "request is missing 'path'"),
    ({"op": "predict", "key": 3}, "'key' must be a string"),
    ({"op": "load", "key": "k", "path": "p", "format": "f", "params": []},
     "'params' must be an object"),
    ({"op": "predict", "key": "k", "regions": "r"}, "'regions' must be a list"),
])
def test_a_header_that_is_no_request_is_refused_by_name(header: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ops.parse_request(header)
    assert str(caught.value) == message


def test_answers_parse_from_reply_headers_with_their_defaults() -> None:
    assert ops.Predicted.parse({"id": 1, "model_s": 0.25}) == ops.Predicted(0.25)
    assert ops.Loaded.parse({"id": 2, "inputs": ["a"], "outputs": ["b"]}) == ops.Loaded(
        ["a"], ["b"], False)
    assert ops.Loaded(["a"], ["b"], True).header() == {
        "inputs": ["a"], "outputs": ["b"], "loaded": True, "warmup_s": None}
    with pytest.raises(ValueError, match="missing 'outputs'"):
        ops.Loaded.parse({"inputs": []})
