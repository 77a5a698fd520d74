"""Engine ``spark``: partitions scored in Spark's Python workers with ``mapInPandas``.

The model is a Spark broadcast variable: sent once to each executor, unpickled once per
Python worker, loaded once per worker process (:mod:`.runtime`'s cache). A Spark
DataFrame gets the score columns added (lazily); with ``output`` each partition writes
its own Parquet file with the model's metadata.
"""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any, Callable, TypeVar, cast

import numpy as np

from . import runtime
from .inputs import parquet_paths, pick_columns
from .shipped import ShippedModel


def spark_type(dtype: np.dtype) -> Any:
    """The Spark SQL type holding ``dtype`` exactly."""
    from pyspark.sql import types as T

    kinds = {"float32": T.FloatType(), "float64": T.DoubleType(), "int64": T.LongType(),
             "int32": T.IntegerType(), "int16": T.ShortType(), "int8": T.ByteType(),
             "bool": T.BooleanType()}
    try:
        return kinds[np.dtype(dtype).name]
    except KeyError:
        raise TypeError(f"Spark has no column type holding {np.dtype(dtype)} exactly") from None


def _session(session: Any) -> Any:
    if session is not None:
        return session
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        raise ValueError("engine 'spark' needs a SparkSession: pass cluster=spark")
    return active


#: The prefix of the Spark job group of a ``score`` call's jobs.
JOB_GROUP = "tfaas-score"

Result = TypeVar("Result")


def new_job_group() -> str:
    return f"{JOB_GROUP}-{uuid.uuid4().hex[:12]}"


def in_job_group(session: Any, description: str, action: Callable[[], Result]) -> Result:
    """``action()`` (which runs Spark jobs) in its own job group, on a thread of its own:
    the calling thread waits, so an interrupt of the kernel (KeyboardInterrupt) reaches
    it at once and cancels the group's jobs (``cancelJobGroup``, over a Py4J connection
    that is not busy waiting for them). A worker's ScoringError comes out as itself,
    not wrapped in Spark's Java stack trace."""
    context = session.sparkContext
    group = new_job_group()
    outcome: dict[str, Any] = {}

    def run() -> None:
        context.setJobGroup(group, description, interruptOnCancel=True)
        try:
            outcome["value"] = action()
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=group, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.25)
    except KeyboardInterrupt:
        context.cancelJobGroup(group)
        thread.join(60)
        raise
    error = outcome.get("error")
    if error is None:
        return cast(Result, outcome["value"])
    found = re.search(r"ScoringError: (.+)", str(error))
    if found is not None and not isinstance(error, runtime.ScoringError):
        raise runtime.ScoringError(found.group(1).strip()) from error
    raise error


def score_spark(shipped: ShippedModel, data: Any, kind: str, *, session: Any,
                output: str | None, batch_rows: int | None, progress: bool) -> Any:
    """Scores of ``data`` in Spark: a lazy DataFrame for a Spark DataFrame, the data's
    own kind for eager data, or the ``output`` folder."""
    from pyspark.sql import types as T

    eager = kind in ("numpy", "pandas")
    if kind == "spark":
        frame = data
        session = frame.sparkSession
    else:
        session = _session(session)
        if kind == "numpy":
            import pandas as pd

            if data.ndim != 2:
                raise ValueError("a numpy array to score must be 2-D (rows)")
            frame = session.createDataFrame(
                pd.DataFrame(data, columns=[f"_{i}" for i in range(data.shape[1])]))
        elif kind == "pandas":
            frame = session.createDataFrame(data)
        elif kind == "parquet":
            frame = session.read.parquet(*(parquet_paths(data) or []))
        else:
            raise TypeError(f"engine 'spark' cannot score {kind} data")
    columns = pick_columns(frame.columns, shipped)
    model = session.sparkContext.broadcast(shipped)
    names = shipped.score_names
    score_type = spark_type(runtime._empty_dtype(shipped))

    if output is not None:
        token = uuid.uuid4().hex[:8]

        def write(batches: Any) -> Any:
            return runtime.write_spark_partition(batches, model.value, columns, batch_rows,
                                                 output, token)

        schema = T.StructType([T.StructField("file", T.StringType()),
                               T.StructField("rows", T.LongType())])
        written = frame.select(*columns).mapInPandas(write, schema)
        in_job_group(session, f"tfaas score {shipped.name} -> {output}", written.collect)
        return output

    def score(batches: Any) -> Any:
        return runtime.score_spark_partition(batches, model.value, columns, batch_rows)

    schema = T.StructType(list(frame.schema.fields)
                          + [T.StructField(n, score_type, False) for n in names])
    scored = frame.mapInPandas(score, schema)
    if not eager:
        return scored
    answer = in_job_group(session, f"tfaas score {shipped.name}",
                          scored.select(*names).toPandas)
    if kind == "numpy":
        return answer.to_numpy()
    answer.index = data.index
    return answer
