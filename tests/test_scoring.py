"""TFaaSClient.score: the seed model over datasets on real engines (the kernel itself and a
Dask LocalCluster of 2 worker processes), fetched once per call, shipped once per worker,
loaded once per worker process, and scoring exactly what the server answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from helpers import TFaaSCaller, in_thread, load_example

from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.scoring import RootFiles, runtime
from tfaas_jupyter.scoring.outputs import read_metadata

pytestmark = pytest.mark.timeout(900)

SEED = load_example("make_seed_model")


class CountingClient(TFaaSClient):
    """A client that counts the model fetches (export requests) it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetches = 0

    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.startswith("export"):
            self.fetches += 1
        return super().request(method, path, *args, **kwargs)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """Two worker processes, one thread each, on this machine. The scheduler's HTTP
    server (health, metrics) binds a port even without a dashboard, 8787 unless told:
    a free one, so another cluster on the machine costs no warning."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1") as cluster, \
            Client(cluster) as client:
        yield client


@pytest.fixture
def client(tfaas_url: str, jp_serverapp) -> Iterator[Any]:
    """A counting client of the test server."""
    c = CountingClient(tfaas_url, token=jp_serverapp.identity_provider.token, timeout=240)
    yield c
    c.close()


async def upload_seed(tfaas: TFaaSCaller, seed_dir: Path, *, keys: bool = False) -> None:
    """The seed model 'vk', as the talk uploads it (``keys``: with its input keys in
    params.json, so that columns are picked by name)."""
    await tfaas.uploaded(directory=seed_dir, name="vk", **({"keys": SEED.KEYS} if keys else {}))


def events(n: int, seed: int = 0) -> np.ndarray:
    """Rows like the seed model's input (its demo row, jittered), float32."""
    rng = np.random.default_rng(seed)
    base = np.asarray(SEED.VALUES, dtype=np.float32)
    return (base * rng.uniform(0.5, 1.5, size=(n, base.size))).astype(np.float32)


async def served(client: TFaaSClient, x: np.ndarray) -> np.ndarray:
    """What the server answers for ``x``, asked 1024 rows at a time (the scorer's
    TensorFlow batch: TensorFlow's last bit depends on the batch's shape), as float32,
    checked against the seed script's numpy forward pass."""
    assert len(x) % runtime.BATCH_ROWS == 0
    answers = [await in_thread(client.predict, "vk", x[i : i + runtime.BATCH_ROWS])
               for i in range(0, len(x), runtime.BATCH_ROWS)]
    expected = np.concatenate(answers).astype(np.float32)
    np.testing.assert_allclose(expected, SEED.predict(x), rtol=1e-5)
    return expected


def check_scores(scores: np.ndarray, expected: np.ndarray) -> None:
    """Exactly what the server answers (float32 as the model computes it), and what the
    seed script's numpy forward pass computes."""
    assert scores.dtype == np.float32
    assert np.array_equal(scores, expected), np.abs(scores - expected).max()


async def test_local_engine_scores_exactly_what_predict_answers(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, tmp_path: Path,
) -> None:
    await upload_seed(tfaas, seed_dir)
    x = events(5120)
    expected = await served(client, x)
    fetched_before, loaded_before = client.fetches, set(runtime.LOADS)

    scores = await in_thread(client.score, "vk", x, progress=False)
    assert client.fetches == fetched_before + 1
    assert isinstance(scores, np.ndarray) and scores.shape == (5120, 1)
    check_scores(scores, expected)

    frame = pd.DataFrame(x, columns=SEED.KEYS, index=np.arange(5120) * 3)
    answer = await in_thread(client.score, "vk:1", frame, progress=False)
    assert client.fetches == fetched_before + 2
    assert list(answer.columns) == ["signal"] and list(answer.index) == list(frame.index)
    check_scores(answer["signal"].to_numpy(), expected[:, 0])

    # loaded once in this process for both calls (the same version)
    assert [runtime.LOADS[k] for k in set(runtime.LOADS) - loaded_before] == [1]

    written = await in_thread(client.score, "vk", x, output=tmp_path / "scores", progress=False)
    files = sorted(Path(written).glob("*.parquet"))
    assert files
    meta = read_metadata(str(files[0]))
    assert meta["tfaas.model"] == "vk" and meta["tfaas.version"] == "1"
    assert len(meta["tfaas.sha256"]) == 64
    back = pd.concat([pd.read_parquet(f) for f in files])
    check_scores(back["signal"].to_numpy(), expected[:, 0])


async def test_local_engine_reads_root_files(client: CountingClient, tfaas: TFaaSCaller,
                                             seed_dir: Path, tmp_path: Path) -> None:
    import awkward as ak
    import uproot

    await upload_seed(tfaas, seed_dir)
    x = events(3072, seed=1)
    expected = await served(client, x)
    files = []
    for i, part in enumerate(np.array_split(x, 3)):
        path = tmp_path / f"events{i}.root"
        with uproot.recreate(path) as f:
            f["Events"] = {k: part[:, j] for j, k in enumerate(SEED.KEYS)}
        files.append(path)
    data = RootFiles(files, "Events", branches=SEED.KEYS)
    scores = await in_thread(client.score, "vk", data, progress=False)
    assert isinstance(scores, ak.Array) and scores.fields == ["signal"]
    check_scores(ak.to_numpy(scores["signal"]), expected[:, 0])


def per_worker_now(dask_client: Any) -> set[str]:
    """The content hashes that arrived on the workers so far."""
    return {d for c in dask_client.run(runtime.counts).values() for d in c["arrivals"]}


async def test_dask_engine_ships_once_per_worker_and_loads_once(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, dask_client: Any,
    tmp_path: Path,
) -> None:
    import dask.array as da
    import dask.dataframe as dd

    await upload_seed(tfaas, seed_dir)
    x = events(20480, seed=2)
    expected = await served(client, x)

    lazy = await in_thread(client.score, "vk", da.from_array(x, chunks=(1500, 21)),
                           cluster=dask_client)
    assert client.fetches == 1
    assert isinstance(lazy, da.Array) and lazy.shape == (20480, 1)
    scores = await in_thread(dask_client.compute(lazy).result)
    check_scores(scores, expected)

    frame = dd.from_pandas(pd.DataFrame(x, columns=SEED.KEYS), npartitions=7)
    lazy_frame = await in_thread(client.score, "vk", frame, cluster=dask_client)
    assert client.fetches == 2
    answer = await in_thread(dask_client.compute(lazy_frame).result)
    check_scores(answer["signal"].to_numpy(), expected[:, 0])

    eager = await in_thread(client.score, "vk", x, engine="dask", cluster=dask_client,
                            progress=False)
    check_scores(eager, expected)
    assert client.fetches == 3

    per_worker = await in_thread(dask_client.run, runtime.counts)
    assert len(per_worker) == 2
    for counts in per_worker.values():
        (key,) = counts["loads"]
        # three calls: three broadcasts (three exports, three content hashes), each
        # arriving once per worker process; one load per process (the same version),
        # however many partitions it scored
        assert sorted(counts["arrivals"].values()) == [1, 1, 1], counts
        assert counts["loads"] == {key: 1}, counts
        assert counts["partitions"][key] >= 2, counts
    total = sum(c["partitions"][key] for c in per_worker.values())
    # every block and partition scored once (the eager array: two partitions per worker)
    assert total == 14 + 7 + 4

    written = await in_thread(client.score, "vk", frame, cluster=dask_client,
                              output=tmp_path / "dask-scores", progress=False)
    files = sorted(Path(written).glob("*.parquet"))
    assert len(files) == 7
    assert read_metadata(str(files[0]))["tfaas.sha256"] in per_worker_now(dask_client)
    back = pd.concat([pd.read_parquet(f) for f in files])
    check_scores(back["signal"].to_numpy(), expected[:, 0])


# -- Spark -----------------------------------------------------------------------------


def test_java_is_found() -> None:
    """pyspark needs a Java runtime: scripts/test installs Debian's headless JRE."""
    import shutil
    import subprocess

    java = shutil.which("java")
    assert java, "no java on PATH (scripts/test installs openjdk-*-jre-headless)"
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "version" in out.stderr


async def test_spark_engine_adds_score_columns_and_writes_parquet(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, spark: Any, tmp_path: Path,
) -> None:
    from pyspark.sql import DataFrame

    await upload_seed(tfaas, seed_dir, keys=True)
    x = events(8192, seed=3)
    expected = await served(client, x)
    frame = pd.DataFrame(x.astype(np.float64), columns=SEED.KEYS)
    frame.insert(0, "event", np.arange(len(x), dtype=np.int64))
    data = (await in_thread(spark.createDataFrame, frame)).repartition(5)

    # columns picked by the model's keys (the event number rides along); lazy
    scored = await in_thread(client.score, "vk", data, cluster=spark)
    assert client.fetches == 1
    assert isinstance(scored, DataFrame) and scored.columns == [*data.columns, "signal"]
    assert dict(scored.dtypes)["signal"] == "float"
    rows = (await in_thread(scored.select("event", "signal").toPandas)).sort_values("event")
    check_scores(rows["signal"].to_numpy(), expected[:, 0])

    eager = await in_thread(client.score, "vk", frame, engine="spark", cluster=spark,
                            progress=False)
    assert client.fetches == 2
    assert list(eager.columns) == ["signal"]
    check_scores(eager["signal"].to_numpy(), expected[:, 0])

    written = await in_thread(client.score, "vk", data, output=tmp_path / "spark", progress=False)
    files = sorted(Path(written).glob("*.parquet"))
    assert len(files) == 5
    meta = read_metadata(str(files[0]))
    assert meta["tfaas.model"] == "vk" and meta["tfaas.version"] == "1"
    total = sum(len(pd.read_parquet(f)) for f in files)
    assert total == len(x)


async def test_service_engine_awkward_data_and_the_magic(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, jp_http_port: int,
    jp_base_url: str, jp_serverapp,
) -> None:
    import awkward as ak
    from IPython.core.interactiveshell import InteractiveShell

    from tfaas_jupyter.client import discovery

    await upload_seed(tfaas, seed_dir)
    x = events(2048, seed=4)
    expected = await served(client, x)

    # the server scores (no model fetched), in float32 as the model answers
    by_service = await in_thread(client.score, "vk", x, engine="service", progress=False)
    assert client.fetches == 0
    check_scores(by_service, expected)
    frame = pd.DataFrame(x, columns=SEED.KEYS)
    answer = await in_thread(client.score, "vk", frame, engine="service", progress=False)
    assert list(answer.columns) == ["signal"]
    check_scores(answer["signal"].to_numpy(), expected[:, 0])

    records = ak.zip({k: x[:, j] for j, k in enumerate(SEED.KEYS)})
    scored = await in_thread(client.score, "vk", records, progress=False)
    assert scored.fields == ["signal"]
    check_scores(ak.to_numpy(scored["signal"]), expected[:, 0])
    assert client.fetches == 1

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "tfaas_jupyter")
    try:
        token = jp_serverapp.identity_provider.token
        await in_thread(shell.run_line_magic, "tfaas",
                        f"connect http://localhost:{jp_http_port}{jp_base_url} --token {token}")
        shell.user_ns["events_frame"] = frame
        magic = await in_thread(shell.run_line_magic, "tfaas", "score vk:1 events_frame")
        check_scores(magic["signal"].to_numpy(), expected[:, 0])
    finally:
        discovery.disconnect()


async def test_failures_name_the_partition_and_a_worker_without_tensorflow(
    client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path, dask_client: Any,
    tmp_path: Path,
) -> None:
    import dask.array as da
    from distributed import Client, LocalCluster

    from tfaas_jupyter.scoring.runtime import ScoringError

    await upload_seed(tfaas, seed_dir)
    x = events(3000, seed=5)
    bad = da.from_array(x[:, :41], chunks=(1000, 41))  # one column short
    lazy = await in_thread(client.score, "vk", bad, cluster=dask_client)
    with pytest.raises(ScoringError, match=r"partition \d failed on .*\(pid \d+\): model 'vk' "
                                           r"expects 42 values per row, got 41"):
        await in_thread(dask_client.compute(lazy).result)

    # a worker process where `import tensorflow` fails, as on a node without it
    preload = tmp_path / "no_tensorflow.py"
    preload.write_text("import sys\nsys.modules['tensorflow'] = None\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", host="127.0.0.1",
                      preload=[str(preload)]) as cluster, \
            Client(cluster) as no_tf:
        with pytest.raises(ScoringError, match=r"worker \S+ \(pid \d+\) cannot score: the "
                                               r"Python package 'tensorflow' is not installed"):
            await in_thread(client.score, "vk", x, engine="dask", cluster=no_tf, progress=False)
