"""Engine ``dask``: partitions scored on a Dask cluster's workers.

The model goes to every worker once (``Client.scatter(..., broadcast=True)``: one
arrival per worker process, whatever the number of partitions) and each task gets it
from its worker's memory. The collections stay lazy; eager data (numpy, pandas,
awkward) is computed with the cluster and answered
eagerly, its tasks cancelled when the kernel is interrupted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import runtime
from .inputs import parquet_paths, pick_columns, record_fields
from .shipped import ShippedModel


def _client(cluster: Any) -> Any:
    if cluster is not None:
        return cluster
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise ValueError("engine 'dask' needs a cluster: pass cluster=distributed.Client(...) "
                         "or create one first") from None


def _partitions(client: Any) -> int:
    return max(2, 2 * len(client.scheduler_info().get("workers", {})))


def _score_array(array: Any, model: Any, batch_rows: int | None, width: int,
                 dtype: np.dtype) -> Any:
    """A lazy Dask Array of scores for a 2-D Dask Array of rows."""
    if array.ndim != 2:
        raise ValueError(f"a Dask Array to score must be 2-D (rows), not {array.ndim}-D")
    rows = array.rechunk({1: -1})
    return rows.map_blocks(runtime.score_block, model, batch_rows, dtype=dtype,
                           chunks=(rows.chunks[0], (width,)), meta=np.empty((0, width), dtype))


def _score_frame(frame: Any, shipped: ShippedModel, model: Any, batch_rows: int | None) -> Any:
    columns = pick_columns(list(frame.columns), shipped)
    return frame.map_partitions(runtime.score_frame, model, columns, batch_rows,
                                meta=runtime.empty_scores(shipped))


def _compute(client: Any, collection: Any, progress: bool) -> Any:
    """``collection`` computed on the cluster, with Dask's progress bar; an interrupt
    cancels its tasks."""
    future = client.compute(collection)
    try:
        if progress:
            from distributed import progress as show

            show(future, notebook=None)
        return future.result()
    except KeyboardInterrupt:
        client.cancel(future, force=True)
        raise


def score_dask(shipped: ShippedModel, data: Any, kind: str, *, cluster: Any,
               output: str | None, batch_rows: int | None, progress: bool) -> Any:
    """Scores of ``data`` on the cluster: lazy for Dask data, computed for eager data."""
    import dask.array as da
    import dask.dataframe as dd
    import pandas as pd

    client = _client(cluster)
    model = client.scatter(shipped, broadcast=True, hash=False)
    names = shipped.score_names
    dtype = runtime._empty_dtype(shipped)
    eager = kind in ("numpy", "pandas", "awkward")
    if kind == "numpy":
        step = max(1, -(-len(data) // _partitions(client)))
        data, kind = da.from_array(data, chunks=(step, -1)), "dask-array"
    elif kind == "pandas":
        data, kind = dd.from_pandas(data, npartitions=_partitions(client)), "dask-dataframe"
    elif kind == "parquet":
        data, kind = dd.read_parquet(parquet_paths(data)), "dask-dataframe"
    elif kind == "awkward":
        import dask_awkward as dak

        data, kind = dak.from_awkward(data, npartitions=_partitions(client)), "dask-awkward"
    elif kind == "root":  # one partition per file, read by the worker that scores it
        import dask

        branches = list(data.branches or shipped.input_keys or [])
        if not branches:
            raise ValueError("give RootFiles(..., branches=[...]): the model lists no keys")
        meta = pd.DataFrame({b: np.empty(0, np.float64) for b in branches})
        data = dd.from_delayed([dask.delayed(runtime.read_root)(path, tree, branches)
                                for path, tree in data.specs().items()],
                               meta=meta, verify_meta=False)
        kind = "dask-dataframe"

    if kind == "dask-awkward":
        fields = pick_columns(record_fields(data), shipped)
        import dask_awkward as dak

        columns = [dak.to_dask_array(data[f]) for f in fields]
        rows = da.stack(columns, axis=1)
        scores = _score_array(rows, model, batch_rows, len(names), dtype)
        lazy: Any = dak.zip({n: dak.from_dask_array(scores[:, i]) for i, n in enumerate(names)})
        as_frame = None
    elif kind == "dask-array":
        lazy = _score_array(data, model, batch_rows, len(names), dtype)
        as_frame = None
    elif kind == "dask-dataframe":
        lazy = _score_frame(data, shipped, model, batch_rows)
        as_frame = lazy
    else:
        raise TypeError(f"engine 'dask' cannot score {kind} data")

    if output is not None:
        frame = as_frame if as_frame is not None else dd.from_dask_array(
            _score_array_of(lazy, kind, names), columns=names)
        writing = frame.to_parquet(output, write_index=False, compute=False,
                                   custom_metadata=shipped.metadata)
        _compute(client, writing, progress)
        return output
    if eager:
        return _compute(client, lazy, progress)
    return lazy


def _score_array_of(lazy: Any, kind: str, names: list[str]) -> Any:
    """The 2-D Dask Array of scores behind a lazy answer that is not a frame."""
    if kind == "dask-array":
        return lazy
    import dask.array as da
    import dask_awkward as dak

    return da.stack([dak.to_dask_array(lazy[n]) for n in names], axis=1)
