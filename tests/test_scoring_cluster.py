"""TFaaSClient.score on a cluster's partitions with engine "service": each Dask or Spark
worker sends its rows to the server as V2 binary tensors, with a predict-only key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import TFaaSCaller, in_thread, scrape
from test_scoring import (  # noqa: F401 - the fixtures are used by name
    SEED,
    CountingClient,
    check_scores,
    client,
    dask_client,
    events,
    served,
    upload_seed,
)

from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.scoring import runtime
from tfaas_jupyter.scoring.runtime import ScoringError

pytestmark = pytest.mark.timeout(900)


async def v2_requests(tfaas: TFaaSCaller) -> dict[str, float]:
    """How many V2 infer and /json requests the server answered (its own metrics; an
    endpoint not asked yet has no sample)."""
    page = scrape((await tfaas.call("GET", "metrics")).body.decode())
    return {endpoint: sum(value for labels, value in page.get("tfaas_requests_total", [])
                          if labels.get("endpoint") == endpoint
                          and labels.get("method") == "POST")
            for endpoint in ("v2", "json")}


async def predict_key(owner: TFaaSClient) -> str:
    """A TFaaS key that may predict with 'vk' and nothing else."""
    made = await in_thread(owner.create_key, "grid", ["vk"], ["predict"])
    return str(made["key"])


def grid_last_used(owner: TFaaSClient) -> float:
    """When the key 'grid' was last presented to the server (0: never)."""
    return max([float(k.get("last_used") or 0) for k in owner.keys() if k["name"] == "grid"]
               or [0.0])


@dataclass
class Grid:
    """The seed model served with its keys, a predict-only key, rows and what the
    server answers for them, and the server's V2 and JSON request counts since."""

    key: str
    x: np.ndarray
    expected: np.ndarray
    requests: dict[str, float]


@pytest.fixture
def grid(client: CountingClient, tfaas: TFaaSCaller, seed_dir: Path,  # noqa: F811
         jp_asyncio_loop: Any) -> Grid:
    async def setup() -> Grid:
        await upload_seed(tfaas, seed_dir, keys=True)
        x = events(8192, seed=6)
        expected = await served(client, x)
        key = await predict_key(client)
        return Grid(key, x, expected, await v2_requests(tfaas))

    return jp_asyncio_loop.run_until_complete(setup())


async def test_service_engine_sends_dask_partitions_with_a_predict_key(
    client: CountingClient, tfaas: TFaaSCaller, grid: Grid, dask_client: Any,  # noqa: F811
) -> None:
    import dask.array as da
    import dask.dataframe as dd

    key, x, expected, before = grid.key, grid.x, grid.expected, grid.requests
    # the key may not fetch the model: a worker holding it can only predict
    with TFaaSClient(client.url, token=key) as holder:
        with pytest.raises(Exception, match="403|scope|not allowed"):
            await in_thread(holder.export, Path("unused"), "vk")
    refused_at = await in_thread(grid_last_used, client)

    lazy = await in_thread(client.score, "vk", da.from_array(x, chunks=(2048, 42)),
                      engine="service", cluster=dask_client, key=key)
    assert isinstance(lazy, da.Array) and lazy.shape == (8192, 1)
    check_scores(await in_thread(dask_client.compute(lazy).result), expected)
    after = await v2_requests(tfaas)
    # one binary V2 request per 1024 rows (the scorer's batch), none as JSON
    assert after["v2"] - before["v2"] == 8 and after["json"] == before["json"]

    # a frame: the columns in the model's order by its keys, whatever their order here
    frame = pd.DataFrame(x, columns=SEED.KEYS)[list(reversed(SEED.KEYS))]
    scored = await in_thread(client.score, "vk", dd.from_pandas(frame, npartitions=4),
                        engine="service", cluster=dask_client, key=key)
    answer = await in_thread(dask_client.compute(scored).result)
    check_scores(answer["signal"].to_numpy(), expected[:, 0])

    assert client.fetches == 0  # nothing exported, nothing shipped, nothing loaded
    for counts in (await in_thread(dask_client.run, runtime.counts)).values():
        assert counts["loads"] == {}, counts
    assert await in_thread(grid_last_used, client) > refused_at  # the workers sent the key

    # a failing partition names its index and the server's reason
    bad = da.from_array(x[:, :41], chunks=(2048, 41))
    lazy = await in_thread(client.score, "vk", bad, engine="service", cluster=dask_client, key=key)
    with pytest.raises(ScoringError, match=r"partition \d failed on .*\(pid \d+\): .*42"):
        await in_thread(dask_client.compute(lazy).result)


async def test_service_engine_sends_spark_partitions(
    client: CountingClient, tfaas: TFaaSCaller, grid: Grid, spark: Any,  # noqa: F811
) -> None:
    from pyspark.sql import DataFrame

    key, x, expected, before = grid.key, grid.x, grid.expected, grid.requests
    unused = await in_thread(grid_last_used, client)
    frame = pd.DataFrame(x.astype(np.float64), columns=SEED.KEYS)
    frame.insert(0, "event", np.arange(len(x), dtype=np.int64))
    data = (await in_thread(spark.createDataFrame, frame)).repartition(4)

    scored = await in_thread(client.score, "vk", data, engine="service", key=key)
    assert isinstance(scored, DataFrame) and scored.columns == [*data.columns, "signal"]
    rows = (await in_thread(scored.select("event", "signal").toPandas)).sort_values("event")
    check_scores(rows["signal"].to_numpy(), expected[:, 0])
    after = await v2_requests(tfaas)
    assert after["v2"] - before["v2"] >= 4 and after["json"] == before["json"]
    assert client.fetches == 0
    assert await in_thread(grid_last_used, client) > unused == 0
