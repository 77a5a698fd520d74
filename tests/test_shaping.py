"""Input shaping without a server: keys, plans, exact dtype casts, the image policy."""

from __future__ import annotations

import numpy as np
import pytest

from tfaas_jupyter.server import shaping
from tfaas_jupyter.server.errors import BadRequest, ErrorKind, WorkerError

BIG = 2**53 + 1  # the first integer a float64 cannot hold


def sig(*inputs: tuple[str, str, list]) -> dict:
    return {"inputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in inputs]}


# -- dtypes and exact casts ----------------------------------------------------


@pytest.mark.parametrize("name, want", [
    ("int64", np.int64), ("float64", np.float64), ("uint8", np.uint8), ("bool", np.bool_),
    (None, np.float32), ("", np.float32), ("bfloat16", np.float32), ("str", np.float32),
])
def test_numpy_dtype(name: object, want: type) -> None:
    assert shaping.numpy_dtype(name) == np.dtype(want)


def test_integers_reach_an_integer_input_exactly() -> None:
    ids = np.array([[1_700_000_001, BIG, -BIG, 2**63 - 1]], dtype=np.int64)
    out = shaping.as_input(ids, np.dtype(np.int64), "ids")
    assert out.dtype == np.int64 and out.tolist() == ids.tolist()
    # whole float64 values below 2**53 are exact too (JSON with fractions elsewhere)
    floats = np.array([[1_700_000_001.0, 2.0**53 - 1, -(2.0**53 - 1)]])
    assert shaping.as_input(floats, np.dtype(np.int64), "ids").tolist() == [
        [1_700_000_001, 2**53 - 1, -(2**53 - 1)]
    ]
    # float32 (proto) whole values are the integers they hold
    assert shaping.as_input(np.array([[16_777_216.0]], np.float32), np.dtype(np.int32),
                            "i").tolist() == [[16_777_216]]
    # uint64 values within int64 pass; a bool input is zero or not
    assert shaping.as_input(np.array([[5]], np.uint64), np.dtype(np.int64), "u").tolist() == [[5]]
    assert shaping.as_input(np.array([[0.0, 2.5]]), np.dtype(bool), "b").tolist() == [[False, True]]


@pytest.mark.parametrize("values, dtype, words", [
    (np.array([[1.5]]), np.int64, "whole numbers"),
    (np.array([[1e30]]), np.int64, "whole numbers"),
    (np.array([[2.0**31]]), np.int32, "2147483647"),
    (np.array([[-1]], np.int64), np.uint8, "from 0 to 255"),
    (np.array([[2**63]], np.uint64), np.int64, "9223372036854775807"),
    (np.array([[300]], np.int64), np.int8, "127"),
    (np.array([[2.0**53 + 2]]), np.int64, "2**53"),  # a float64 beyond 2**53 may be rounded
    (np.array([[2.0**53]]), np.int64, "2**53"),  # it may have been 2**53 + 1
])
def test_integer_inputs_refuse_what_they_cannot_hold(values: np.ndarray, dtype: type,
                                                     words: str) -> None:
    with pytest.raises(BadRequest) as ei:
        shaping.as_input(values, np.dtype(dtype), "ids")
    assert "'ids'" in ei.value.message and words in ei.value.message
    assert ei.value.status == 400


def test_float_inputs() -> None:
    x = np.array([[0.1, 1 / 3, 1e300]])
    out = shaping.as_input(x, np.dtype(np.float64), "x")
    assert out.dtype == np.float64 and out.tolist() == x.tolist()  # no float32 on the way
    out = shaping.as_input(x[:, :2], np.dtype(np.float32), "x")
    assert out.dtype == np.float32 and out.tolist() == x[:, :2].astype(np.float32).tolist()
    with pytest.raises(BadRequest) as ei:  # 1e300 is no float32
        shaping.as_input(x, np.dtype(np.float32), "x")
    assert "finite float32" in ei.value.message
    ints = np.array([[BIG]], np.int64)  # an integer request into a float input: nearest
    assert shaping.as_input(ints, np.dtype(np.float64), "x").tolist() == [[float(BIG)]]


# -- plans and keys ------------------------------------------------------------


def test_a_row_is_cut_into_the_inputs_in_signature_order() -> None:
    signature = sig(("a", "float32", [None, 2, 3]), ("b", "int64", [None, 1]),
                    ("c", "float64", [None]))
    plan = shaping.input_plan("m", signature, 8)
    assert [(p.start, p.size, p.dims, p.dtype.name, p.name) for p in plan] == [
        (0, 6, (2, 3), "float32", "a"), (6, 1, (1,), "int64", "b"), (7, 1, (), "float64", "c"),
    ]
    rows = np.arange(16, dtype=np.float64).reshape(2, 8)
    a, b, c = shaping.split_rows(rows, plan)
    assert a.dtype == np.float32 and a.shape == (2, 2, 3)
    np.testing.assert_array_equal(a, rows[:, :6].reshape(2, 2, 3))
    assert b.dtype == np.int64 and b.tolist() == [[6], [14]]
    assert c.dtype == np.float64 and c.tolist() == [7.0, 15.0]


def test_plan_errors_and_a_free_width_input() -> None:
    with pytest.raises(BadRequest, match="expects 3 values per row, got 2"):
        shaping.input_plan("m", sig(("x", "float32", [None, 3])), 2)
    with pytest.raises(BadRequest, match="has no inputs"):
        shaping.input_plan("m", {"inputs": []}, 2)
    with pytest.raises(BadRequest, match="unknown size"):
        shaping.input_plan("m", sig(("x", "float32", [None, None]),
                                    ("y", "float32", [None, 1])), 3)
    plan = shaping.input_plan("m", sig(("x", "float32", [None, None])), 5)
    assert [(p.size, p.dims) for p in plan] == [(5, (5,))]


def test_keys_are_mapped_onto_the_params_order() -> None:
    shaper = shaping.Shaper()
    params = {"keys": ["a", "b", "c"]}
    signature = sig(("x", "int64", [None, 3]))
    rows = np.array([[3, 1, BIG]], dtype=np.int64)
    (x,) = shaper.rows_to_inputs("m@1", "m", params, signature, rows, ["c", "a", "b"])
    assert x.tolist() == [[1, BIG, 3]]
    assert shaper.key_order("m@1", "m", params["keys"], ["a", "b", "c"]) is None  # as sent
    assert shaper.key_order("m@1", "m", None, ["z"]) is None  # no keys listed: order counts
    for keys, words in ((["a", "b"], "missing key(s): c"), (["a", "b", "c", "d"], "unknown"),
                        (["a", "a", "b"], "duplicates")):
        with pytest.raises(BadRequest, match=words.replace("(", r"\(").replace(")", r"\)")):
            shaper.key_order("m@1", "m", params["keys"], keys)
    with pytest.raises(BadRequest, match="2 keys but 3 values"):
        shaper.rows_to_inputs("m@2", "m", {"keys": ["a", "b"]}, signature, rows, ["b", "a"])


def test_typed_inputs_and_outputs_keep_their_dtypes() -> None:
    signature = sig(("ids", "int64", [None, 2]), ("x", "float32", [None, 1]))
    ids, x = shaping.typed_inputs("m", signature, [np.array([[BIG, 1]]), np.array([[0.5]])])
    assert ids.dtype == np.int64 and ids.tolist() == [[BIG, 1]] and x.dtype == np.float32
    with pytest.raises(BadRequest, match="takes 2 input"):
        shaping.typed_inputs("m", signature, [np.zeros((1, 2))])
    outs = shaping.output_rows([np.array([BIG, 2], np.int64), np.zeros((2, 2, 2))], 2)
    assert outs[0].dtype == np.int64 and outs[0].tolist() == [[BIG], [2]]
    assert outs[1].shape == (2, 4) and outs[1].dtype == np.float64
    with pytest.raises(WorkerError) as ei:
        shaping.output_rows([np.zeros(3)], 2)
    assert ei.value.kind is ErrorKind.MODEL and ei.value.status == 500


# -- images --------------------------------------------------------------------


@pytest.mark.parametrize("shape, params, channels, size", [
    ([None, 28, 28, 1], {}, 1, (28, 28)),
    ([None, 32, 16, 3], {}, 3, (32, 16)),
    ([None, None, None, 3], {}, 3, None),
    ([None, 8, 8], {}, 1, (8, 8)),  # no channel axis: gray
    ([None, 8, 24], {"img_channels": 3}, 3, (8, 8)),  # rows of W * 3 values
    ([None, 64], {"imgChannels": 1}, 1, None),  # a dense model over flattened pixels
    ([None, 64], {}, 3, None),
])
def test_image_layout(shape: list, params: dict, channels: int, size: tuple | None) -> None:
    layout = shaping.image_layout("m", sig(("img", "float32", shape)), params)
    assert (layout.channels, layout.size, layout.rank) == (channels, size, len(shape))


def test_image_input_shapes_and_refusals() -> None:
    image = np.arange(2 * 4 * 3, dtype=np.float32).reshape(1, 2, 4, 3)
    for shape, want in (([None, 2, 4, 3], (1, 2, 4, 3)), ([None, 2, 12], (1, 2, 12)),
                        ([None, 24], (1, 24))):
        layout = shaping.image_layout("m", sig(("img", "uint8", shape)), {"img_channels": 3})
        out = shaping.image_input(image, layout)
        assert out.shape == want and out.dtype == np.uint8
        np.testing.assert_array_equal(out.reshape(-1), image.reshape(-1))
    for params, words in (({"img_channels": 2}, "1 or 3"), ({"img_channels": "rgb"}, "1 or 3")):
        with pytest.raises(BadRequest, match=words):
            shaping.image_layout("m", sig(("img", "float32", [None, 4, 4, 3])), params)
    with pytest.raises(BadRequest, match="one image input"):
        shaping.image_layout("m", sig(("a", "float32", [None, 1]), ("b", "float32", [None, 1])),
                             {})


def test_a_channels_first_image_input_gets_the_image_transposed() -> None:
    """An ONNX (PyTorch) image model takes [N, C, H, W]: the decoded [1, H, W, C] image
    is resized to H x W with C channels and handed over channels first."""
    spec = {"name": "x", "dtype": "float32", "shape": [None, 3, 6, 5], "layout": "NCHW"}
    layout = shaping.image_layout("m", {"inputs": [spec]}, {})
    assert (layout.channels, layout.size, layout.channels_first) == (3, (6, 5), True)
    image = np.arange(6 * 5 * 3, dtype=np.float32).reshape(1, 6, 5, 3)
    out = shaping.image_input(image, layout)
    assert out.shape == (1, 3, 6, 5)
    np.testing.assert_array_equal(out[0, 2], image[0, :, :, 2])  # channel planes
    gray = dict(spec, shape=[None, 1, 8, 8])
    assert shaping.image_layout("m", {"inputs": [gray]}, {}).channels == 1
