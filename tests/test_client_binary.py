"""TFaaSClient.predict sends big numeric arrays as V2 binary tensors, in pipelined chunks.

The answers must be exactly the JSON route's and the independent numpy forward pass's;
the way taken is read from the client's debug log; the server must really have
answered V2 requests (its per-endpoint counts).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tfmodels
from helpers import TFaaSCaller, in_thread, load_example

from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.client.tensors import input_tensors, output_rows
from tfaas_jupyter.v2binary import binary_request, split_answer

pytestmark = pytest.mark.timeout(900)

SEED_IN = 42
LOGGER = "tfaas_jupyter.client.api"


def seed_rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, SEED_IN)).astype(np.float32)


def seed_forward(rows: np.ndarray) -> np.ndarray:
    return np.asarray(load_example("make_seed_model").predict(rows), dtype=np.float32)


def v2_requests(serverapp: Any) -> int:
    """How many requests the server's V2 routes answered so far."""
    return int(serverapp.web_app.settings["tfaas_service"].stats.by_endpoint.get("v2", 0))


# -- no server needed ------------------------------------------------------------


def test_binary_request_and_answer_round_trip_without_copies() -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    header, parts = binary_request([("x", x)])
    assert parts[0].obj is not None and np.shares_memory(np.frombuffer(parts[0], np.float32), x)
    doc = json.loads(header)
    assert doc["inputs"][0] == {"name": "x", "datatype": "FP32", "shape": [4, 3],
                                "parameters": {"binary_data_size": 48}}
    assert doc["parameters"] == {"binary_data_output": True}
    # an answer in the same layout decodes as views of the body
    answer = (b'{"outputs":[{"name":"y","datatype":"INT64","shape":[2],'
              b'"parameters":{"binary_data_size":16}}]}')
    raw = np.array([2**53 + 1, -(2**63)], dtype="<i8").tobytes()
    _, got = split_answer(answer + raw, len(answer))
    assert got["y"].tolist() == [2**53 + 1, -(2**63)]
    assert not got["y"].flags.owndata and not got["y"].flags.writeable


def test_input_tensors_follow_the_json_route() -> None:
    meta = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": [-1, 2]},
                       {"name": "x", "datatype": "FP32", "shape": [-1, 1]}]}
    rows = np.array([[2**53 + 1, 5, 7], [1, 2, 3]], dtype=np.int64)
    tensors = input_tensors(meta, rows, None, None)
    assert tensors is not None
    (n1, ids), (n2, x) = tensors
    assert (n1, n2) == ("ids", "x") and ids.dtype == np.int64 and x.dtype == np.float32
    assert ids[0, 0] == 2**53 + 1 and x.ravel().tolist() == [7.0, 3.0]
    # keys are reordered after params.json's keys
    by_keys = input_tensors(meta, rows[:, [2, 0, 1]], ["c", "a", "b"], ["a", "b", "c"])
    assert by_keys is not None and np.array_equal(by_keys[0][1], ids)
    # what the JSON route would refuse or map otherwise goes as JSON (None)
    assert input_tensors(meta, rows, ["a", "b", "zz"], ["a", "b", "c"]) is None
    assert input_tensors(meta, rows[:, :2], None, None) is None  # 2 values, model takes 3
    assert input_tensors(meta, np.array([[0.5, 1, 1.0]]), None, None) is None  # a fraction
    assert input_tensors(meta, np.array([[1, 1, 1e39]]), None, None) is None  # beyond f32
    assert input_tensors({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [-1, 3]}]},
                         rows, None, None) is None


def test_output_rows_keep_the_documented_types() -> None:
    ints = np.array([[2**62 + 1], [-3]], dtype=np.int64)
    assert output_rows([ints], 2).dtype == np.int64
    assert output_rows([ints], 2)[0, 0] == 2**62 + 1
    both = output_rows([np.array([1.5, 2.5], np.float32), np.array([[True], [False]])], 2)
    assert both.dtype == np.float64 and both.tolist() == [[1.5, 1.0], [2.5, 0.0]]
    with pytest.raises(ValueError):
        output_rows([np.zeros(3)], 2)


# -- a live server -----------------------------------------------------------------


async def test_big_array_goes_as_binary_chunks_exactly(tfaas: TFaaSCaller, client: TFaaSClient,
                                                     seed_dir: Path, caplog,
                                                     jp_serverapp) -> None:
    """More rows and values than one JSON request may carry (max_rows 100,000,
    max_request_values 1,000,000): answered in chunks, exactly the forward pass's."""
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    rows = seed_rows(150_000)
    client.chunk_bytes = 2 << 20  # 12,483 rows a chunk: 13 chunks, 4 in flight
    client.shared_memory = False
    before = v2_requests(jp_serverapp)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        got = await in_thread(client.predict, "vk", rows)
    assert "as binary tensors" in caplog.text
    assert got.dtype == np.float64 and got.shape == (150_000, 1)
    # float32 values (float64 holds them exactly), in order, as the forward pass's
    assert np.array_equal(got.astype(np.float32), got)
    np.testing.assert_allclose(got, seed_forward(rows), rtol=1e-5, atol=1e-6)
    assert v2_requests(jp_serverapp) - before == 13 + 1  # the chunks and the metadata
    # the same rows (one request each way) answer bit for bit as JSON
    client.binary_min_values = 1
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        binary = await in_thread(client.predict, "vk", rows[:500])
    assert "as binary tensors" in caplog.text
    client.binary_min_values = 10**9
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        small = await in_thread(client.predict, "vk", rows[:500])
    assert "as JSON" in caplog.text
    # JSON carries float32's shortest decimals, binary tensors the float32 values
    # themselves: the same model values either way
    assert small.dtype == binary.dtype == np.float64
    np.testing.assert_array_equal(small.astype(np.float32), binary.astype(np.float32))
    np.testing.assert_array_equal(binary.astype(np.float32).astype(np.float64), binary)
    # one row stays one row
    client.binary_min_values = 1
    one = await in_thread(client.predict, "vk", rows[7])
    assert one.shape == (1,) and one[0] == got[7, 0]


async def test_typed_model_inputs_cut_and_cast_exactly(tfaas: TFaaSCaller, client: TFaaSClient,
                                                       tmp_path: Path, jp_serverapp) -> None:
    """int64 rows for the three-input model: ids exact above 2**53, x as float32,
    flag as bool, outputs int64/float32/bool; the same as the JSON route's answer."""
    typed = tfmodels.make_typed_savedmodel(tmp_path / "typed")
    reply = await tfaas.upload("typed", typed.extra["tar"].read_bytes(),
                               filename="typed.tar.gz")
    assert reply.code == 200, reply.body
    rng = np.random.default_rng(3)
    n = 3000
    ids = rng.integers(2**60, 2**62, size=(n, 3), dtype=np.int64)
    ids[0, 0] = 2**53 + 1
    x = rng.integers(-1000, 1000, size=(n, tfmodels.N_IN), dtype=np.int64)
    flag = rng.integers(0, 2, size=(n, 1), dtype=np.int64)
    # each row's values in the model's input order (by name: flag, ids, x)
    rows = np.concatenate([flag, ids, x], axis=1)
    assert rows.size >= client.binary_min_values
    client.shared_memory = False
    before = v2_requests(jp_serverapp)
    binary = await in_thread(client.predict, "typed", rows)
    assert v2_requests(jp_serverapp) - before == 2
    client.binary_min_values = 10**9
    as_json = await in_thread(client.predict, "typed", rows)
    assert binary.dtype == as_json.dtype == np.float64  # int64, float32, bool outputs
    # the integers and booleans equal; the float32 score as its float32 values
    np.testing.assert_array_equal(binary[:, :4], as_json[:, :4])
    assert binary[0, 1] == 2**53 + 2
    np.testing.assert_array_equal(binary.astype(np.float32), as_json.astype(np.float32))
    # outputs in the signature's order (flag_not, ids_next, score), mixed: float64
    ref = typed.reference([{"ids": ids, "x": x.astype(np.float32), "flag": flag.astype(bool)}])
    expected = np.concatenate([r.reshape(n, -1).astype(np.float64) for r in ref], axis=1)
    assert binary.dtype == np.float64
    np.testing.assert_array_equal(binary, expected)


async def test_same_machine_and_user_goes_through_shared_memory(
        tfaas: TFaaSCaller, client: TFaaSClient, seed_dir: Path, caplog,
        jp_serverapp) -> None:
    """A server on this machine, as this user: the rows go through a region of the
    client's own, registered for the call and gone after it; the same answer."""
    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    rows = seed_rows(120_000, seed=4)
    client.chunk_bytes = 4 << 20
    before = set(os.listdir("/dev/shm"))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        got = await in_thread(client.predict, "vk", rows)
    assert "shares memory with this process" in caplog.text
    assert "rows through shared memory" in caplog.text
    np.testing.assert_allclose(got, seed_forward(rows), rtol=1e-5, atol=1e-6)
    regions = jp_serverapp.web_app.settings["tfaas_shm"]
    assert regions.status() == []  # unregistered after the call
    assert set(os.listdir("/dev/shm")) <= before  # and its object removed
    # the probe is done once; small arrays go as binary tensors
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        await in_thread(client.predict, "vk", rows[:1000])
    assert "as binary tensors" in caplog.text and "shares memory" not in caplog.text
    # a server that refuses regions: binary tensors, the same answer
    regions.enabled = False
    other = TFaaSClient(client.url, token=client.token, timeout=300)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        again = await in_thread(other.predict, "vk", rows)
    other.close()
    regions.enabled = True
    assert "no shared memory with the server" in caplog.text
    assert "rows as binary tensors" in caplog.text
    # (chunks of other sizes: float32 sums may differ in the last bit at their edges)
    np.testing.assert_allclose(again, got, rtol=1e-6, atol=1e-7)


async def test_cli_predicts_the_rows_of_a_npy_file(tfaas: TFaaSCaller, client: TFaaSClient,
                                                   seed_dir: Path, tmp_path: Path) -> None:
    """``tfaas --predict=rows.npy --model=vk``: one JSON list of output rows, as
    predict answers them; without --model, the server's default model's."""
    import subprocess
    import sys

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    rows = seed_rows(6000, seed=8)
    np.save(tmp_path / "rows.npy", rows)
    env = {**os.environ, "TFAAS_TOKEN": client.token or ""}
    argv = [sys.executable, "-m", "tfaas_jupyter.client.cli", f"--url={client.url}",
            f"--predict={tmp_path / 'rows.npy'}"]
    done = await in_thread(subprocess.run, [*argv, "--model=vk"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    got = np.asarray(json.loads(done.stdout))
    expected = await in_thread(client.predict, "vk", rows)
    np.testing.assert_array_equal(got, expected)
    # without --model, as a bare JSON row: the server's default model (vk, the last
    # upload) answers, over the JSON route (float32's shortest decimals)
    done = await in_thread(subprocess.run, argv, capture_output=True, text=True, env=env,
                           timeout=300)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.asarray(json.loads(done.stdout), dtype=np.float32),
                                  expected.astype(np.float32))


async def test_metadata_is_the_servers_v2_metadata(tfaas: TFaaSCaller, client: TFaaSClient,
                                                   seed_dir: Path) -> None:
    """``TFaaSClient.metadata``: what ``GET v2/models/NAME[/versions/V]`` answers, the
    seed's input with its V2 datatype and free batch dimension; a missing model is 404."""
    from tfaas_jupyter.client import TFaaSClientError

    assert (await tfaas.upload_dir(seed_dir, "vk")).code == 200
    latest = await in_thread(client.metadata, "vk")
    assert latest == (await tfaas.call("GET", "v2/models/vk")).json()
    assert await in_thread(client.metadata, "vk", 1) == (
        await tfaas.call("GET", "v2/models/vk/versions/1")).json()
    (tensor,) = latest["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == (
        "dense_1_input", "FP32", [-1, 42])
    with pytest.raises(TFaaSClientError) as missing:
        await in_thread(client.metadata, "nope")
    assert missing.value.status == 404
