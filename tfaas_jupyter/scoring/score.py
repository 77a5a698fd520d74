"""``TFaaSClient.score``: one model version over a whole dataset, on an engine.

The model is resolved and fetched from the server once per call (the export route, for
that one version), shipped to the engine's workers once, and loaded once per worker
process (see :mod:`.runtime`). Dask and Spark answers stay lazy unless ``output`` asks
for files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .inputs import kind_of
from .shipped import ShippedModel

#: A ``tfaas_jupyter.client.TFaaSClient`` (not imported here: the client imports this module).
TFaaSClient = Any

ENGINES = ("local", "dask", "spark", "service")


def model_and_version(model: str | int | None, version: int | str | None) -> tuple[str, Any]:
    """``"vk"``, ``"vk:stable"``, ``"vk:3"`` (and ``version=``) as (name, version or None)."""
    if not isinstance(model, str) or not model:
        raise ValueError("score needs the model's name (\"vk\", \"vk:stable\", \"vk:3\")")
    name, sep, ref = model.partition(":")
    if sep:
        if version is not None:
            raise ValueError(f"give the version once: {model!r} or version={version!r}")
        version = ref
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version)
    return name, version


def fetch_model(client: TFaaSClient, model: str, version: int | str | None = None) -> ShippedModel:
    """The model version as the server exports it, ready to ship (one request)."""
    name, version = model_and_version(model, version)
    if version is None:  # the latest, as the server lists it
        version = int(client.model(name)["version"])
    with tempfile.TemporaryDirectory(prefix="tfaas-score-fetch-") as tmp:
        target = client.export(tmp, model=name, version=version)
        folders = list((target / "models" / name).iterdir())
        if len(folders) != 1:
            raise RuntimeError(f"the export of {name!r} holds {len(folders)} versions, not one")
        return ShippedModel.from_folder(folders[0], name, int(folders[0].name))


def default_engine(kind: str, cluster: Any) -> str:
    """What the data (or the cluster given) runs on."""
    if kind in ("dask-array", "dask-dataframe", "dask-awkward"):
        return "dask"
    if kind == "spark":
        return "spark"
    if cluster is not None:
        module = type(cluster).__module__ or ""
        if module.startswith("distributed"):
            return "dask"
        if module.startswith("pyspark"):
            return "spark"
    return "local"


def score(client: TFaaSClient, model: str, data: Any, *, engine: str | None = None,
          cluster: Any = None, output: str | None = None, batch_rows: int | None = None,
          progress: bool = True, version: int | str | None = None,
          key: str | None = None) -> Any:
    """See :meth:`TFaaSClient.score`."""
    kind = kind_of(data)
    engine = engine or default_engine(kind, cluster)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if batch_rows is not None and int(batch_rows) < 1:
        raise ValueError("batch_rows must be a positive number of rows")
    if output is not None:
        output = str(Path(output).expanduser())
    if engine == "service":
        if output is not None:
            raise ValueError("engine 'service' answers the scores; write them yourself")
        name, ref = model_and_version(model, version)
        if kind in ("numpy", "pandas", "parquet"):
            from .service import score_service

            return score_service(client, name, ref, data, kind, batch_rows=batch_rows,
                                 progress=progress)
        from .served import served_model

        # the cluster's workers send their partitions to the server themselves
        shipped: ShippedModel = served_model(client, name, ref, key)
        engine = default_engine(kind, cluster)
        if engine == "local":
            raise TypeError(f"engine 'service' scores numpy, pandas or Parquet data, or "
                            f"a cluster's partitions (Dask, Spark), not {kind}")
    else:
        shipped = fetch_model(client, model, version)
    if engine == "local":
        from .local import score_local

        return score_local(shipped, data, kind, output=output, batch_rows=batch_rows,
                           progress=progress)
    if engine == "dask":
        from .dask_engine import score_dask

        return score_dask(shipped, data, kind, cluster=cluster, output=output,
                          batch_rows=batch_rows, progress=progress)
    from .spark_engine import score_spark

    return score_spark(shipped, data, kind, session=cluster, output=output,
                       batch_rows=batch_rows, progress=progress)
