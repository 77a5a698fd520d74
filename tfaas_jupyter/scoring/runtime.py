"""What runs where the rows are: a Dask or Spark worker process, or the kernel itself.

A shipped model is unpacked and loaded once per process, cached by its content hash,
then scores numpy rows in batches with the process's own TensorFlow. Nothing here talks
to the notebook server. TensorFlow is imported on first use only, so the drivers can
import this module in a kernel without it.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np

from ..server.shaping import input_plan, output_rows, split_rows
from .served import ServedModel
from .shipped import ARRIVALS, ShippedModel

#: How many times this process loaded a model into TensorFlow, by its cache key.
LOADS: Counter[str] = Counter()
#: Partitions this process scored, by the model's cache key.
PARTITIONS: Counter[str] = Counter()

#: The default rows per TensorFlow call. Every call has exactly this many rows (a
#: partition's last batch is padded with zeros): TensorFlow's CPU kernels round the last
#: bit differently for different batch shapes (tiling, SIMD tails, splitting among
#: threads), so one fixed shape makes a row's score independent of the partitioning.
#: 1024 rows keep a call's overhead small and, measured, give the same bits whatever
#: the number of threads.
BATCH_ROWS = 1024

_loaded: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


class ScoringError(RuntimeError):
    """Scoring failed where the rows are (a missing package, rows the model refuses)."""


def where() -> str:
    """This process, as an error names it: ``host (pid N)``."""
    return f"{socket.gethostname()} (pid {os.getpid()})"


def _tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ScoringError(
            f"worker {where()} cannot score: the Python package 'tensorflow' is not "
            f"installed there ({exc}); install tensorflow (or tensorflow-cpu) on every worker"
        ) from None
    return tf


def loaded(model: ShippedModel) -> Callable[..., Any]:
    """The model's ``serving_default`` function, loaded once in this process."""
    with _lock:
        function = _loaded.get(model.cache_key)
        if function is not None:
            return function
        tf = _tensorflow()
        folder = Path(tempfile.mkdtemp(prefix=f"tfaas-score-{model.digest[:12]}-"))
        with tarfile.open(fileobj=io.BytesIO(model.archive), mode="r:") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(folder, filter="data")
            else:  # Python before 3.11.4: the archive is our own export's
                tar.extractall(folder)
        saved = tf.saved_model.load(str(folder))
        signature = saved.signatures["serving_default"]
        signature._tfaas_keepalive = saved  # the signature needs its object alive
        _loaded[model.cache_key] = signature
        LOADS[model.cache_key] += 1
        return cast("Callable[..., Any]", signature)


def score_rows(model: ShippedModel, rows: np.ndarray, batch_rows: int | None = None) -> np.ndarray:
    """Scores of 2-D ``rows`` (one row per event, the model's values in order): one row
    of output values per row, in the outputs' own dtype when they share one. TensorFlow
    is called with exactly ``batch_rows`` rows each time (see :data:`BATCH_ROWS`).
    Engine ``service`` (a :class:`~.served.ServedModel`): the server's scores."""
    if isinstance(model, ServedModel):
        return model.score(rows, batch_rows or BATCH_ROWS)
    function = loaded(model)
    tf = _tensorflow()
    signature = model.signature
    plan = input_plan(model.name, signature, rows.shape[1])
    keys = [spec["key"] for spec in signature["inputs"]]
    out_keys = [spec["key"] for spec in signature["outputs"]]
    step = int(batch_rows or BATCH_ROWS)
    pieces = []
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step]
        n_rows = chunk.shape[0]
        if n_rows < step:
            padded = np.zeros((step, chunk.shape[1]), dtype=chunk.dtype)
            padded[:n_rows] = chunk
            chunk = padded
        inputs = split_rows(chunk, plan)
        answer = function(**{k: tf.constant(a) for k, a in zip(keys, inputs)})
        outputs = [o[:n_rows] for o in output_rows([answer[k].numpy() for k in out_keys], step)]
        pieces.append(outputs[0] if len(outputs) == 1 else np.concatenate(
            [o.astype(np.result_type(*outputs), copy=False) for o in outputs], axis=1))
    if not pieces:
        return np.empty((0, len(model.score_names)), dtype=_empty_dtype(model))
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _empty_dtype(model: ShippedModel) -> np.dtype:
    return np.result_type(*[np.dtype(o["dtype"]) for o in model.signature["outputs"]])


def score_partition(model: ShippedModel, rows: np.ndarray, batch_rows: int | None,
                    index: int | None = None) -> np.ndarray:
    """:func:`score_rows` for one partition of an engine; a failure names the partition
    and the worker."""
    try:
        scores = score_rows(model, rows, batch_rows)
    except ScoringError:
        raise
    except Exception as exc:
        part = f"partition {index}" if index is not None else "a partition"
        raise ScoringError(f"{part} failed on {where()}: {exc}") from exc
    PARTITIONS[model.cache_key] += 1
    return scores


def counts() -> dict[str, Any]:
    """This process's counts (arrivals, loads, partitions by content hash), for tests and
    for people wondering how often a model travelled."""
    return {"where": where(), "arrivals": dict(ARRIVALS), "loads": dict(LOADS),
            "partitions": dict(PARTITIONS)}


# -- what each engine calls on its workers ------------------------------------------


def score_block(block: np.ndarray, model: ShippedModel, batch_rows: int | None,
                block_info: Any = None) -> np.ndarray:
    """Dask Array ``map_blocks``: one block of rows (all the columns) to its scores."""
    index = None
    if block_info and None in block_info:
        index = block_info[None]["chunk-location"][0]
    return score_partition(model, np.asarray(block), batch_rows, index)


def score_frame(frame: Any, model: ShippedModel, columns: list[str], batch_rows: int | None,
                partition_info: Any = None) -> Any:
    """Dask DataFrame ``map_partitions``: one pandas partition to a frame of scores with
    the partition's index."""
    import pandas as pd

    from .inputs import frame_rows

    index = partition_info.get("number") if isinstance(partition_info, dict) else None
    if len(frame) == 0:
        return empty_scores(model)
    scores = score_partition(model, frame_rows(frame, columns), batch_rows, index)
    return pd.DataFrame(scores, columns=model.score_names, index=frame.index)


def read_root(path: str, tree: str, branches: list[str]) -> Any:
    """One ROOT file's ``branches`` as a pandas frame, read by the worker (uproot)."""
    import pandas as pd
    import uproot

    with uproot.open(path) as file:
        arrays = file[tree].arrays(branches, library="np")
    return pd.DataFrame({b: arrays[b] for b in branches})


def empty_scores(model: ShippedModel) -> Any:
    """A pandas frame with the model's score columns and no rows (Dask's ``meta``)."""
    import pandas as pd

    dtype = _empty_dtype(model)
    return pd.DataFrame({name: np.empty(0, dtype=dtype) for name in model.score_names})


def _spark_partition() -> int | None:
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.partitionId() if context is not None else None


def score_spark_partition(batches: Any, model: ShippedModel, columns: list[str],
                          batch_rows: int | None) -> Any:
    """Spark ``mapInPandas``: each Arrow batch of a partition with its score columns."""
    from .inputs import frame_rows

    index = _spark_partition()
    for frame in batches:
        if len(frame) == 0:
            continue
        scores = score_partition(model, frame_rows(frame, columns), batch_rows, index)
        for i, name in enumerate(model.score_names):
            frame[name] = scores[:, i]
        yield frame


def write_spark_partition(batches: Any, model: ShippedModel, columns: list[str],
                          batch_rows: int | None, output: str, token: str) -> Any:
    """Spark ``mapInPandas`` with ``output``: a partition's scores as one Parquet file
    (``part-TOKEN-N.parquet``) with the model's metadata; yields (file, rows)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from .inputs import frame_rows
    from .outputs import scores_table

    index = _spark_partition()
    pieces = [score_partition(model, frame_rows(f, columns), batch_rows, index)
              for f in batches if len(f)]
    scores = np.concatenate(pieces) if pieces else np.empty(
        (0, len(model.score_names)), _empty_dtype(model))
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{token}-{index if index is not None else 0:05d}.parquet"
    pq.write_table(scores_table(model, scores), path)
    yield pd.DataFrame({"file": [str(path)], "rows": [len(scores)]})
