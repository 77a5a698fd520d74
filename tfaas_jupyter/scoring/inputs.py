"""What a dataset is, and its rows as the model takes them.

Every kind of data ``score`` takes is recognised here by its module and attributes
(pandas, Dask, awkward, Spark are imported only when the data is theirs), and its
columns are picked by the model's keys (params.json ``keys``) or, for a model that lists
none, taken in their own order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .shipped import ShippedModel


@dataclass(frozen=True)
class RootFiles:
    """ROOT files to score: ``files`` (paths or URLs uproot opens), the TTree ``tree`` in
    each, and the ``branches`` that are the model's columns (default: the model's keys)."""

    files: Sequence[str | os.PathLike[str]]
    tree: str
    branches: Sequence[str] | None = None
    #: read this many entries at a time (local engine) or per partition (Dask)
    step_size: int | str = "100 MB"
    options: dict[str, Any] = field(default_factory=dict)

    def specs(self) -> dict[str, str]:
        """``{file: tree}``, as uproot's ``iterate`` and ``dask`` take files."""
        return {os.fspath(f): self.tree for f in self.files}


def kind_of(data: Any) -> str:
    """``numpy``, ``pandas``, ``dask-array``, ``dask-dataframe``, ``awkward``,
    ``dask-awkward``, ``spark``, ``root`` or ``parquet``; a TypeError for anything else."""
    if isinstance(data, RootFiles):
        return "root"
    if isinstance(data, np.ndarray):
        return "numpy"
    if parquet_paths(data) is not None:
        return "parquet"
    module = type(data).__module__ or ""
    top = module.split(".")[0]
    if top == "pandas" and hasattr(data, "columns"):
        return "pandas"
    if top in ("dask", "dask_expr"):
        return "dask-dataframe" if hasattr(data, "columns") else "dask-array"
    if top == "dask_awkward":
        return "dask-awkward"
    if top == "awkward":
        return "awkward"
    if top == "pyspark" and hasattr(data, "mapInPandas"):
        return "spark"
    raise TypeError(
        "data must be a numpy array, a pandas DataFrame, a Dask Array or DataFrame, an "
        "awkward or dask-awkward array of records, a Spark DataFrame, RootFiles or Parquet "
        f"paths, not {type(data).__module__}.{type(data).__name__}"
    )


def parquet_paths(data: Any) -> list[str] | None:
    """The Parquet files or folders ``data`` names (a path, or a list of paths, ending in
    ``.parquet`` or naming a folder), else None."""
    items = [data] if isinstance(data, (str, os.PathLike)) else data
    if not isinstance(items, (list, tuple)) or not items:
        return None
    if not all(isinstance(p, (str, os.PathLike)) for p in items):
        return None
    paths = [os.fspath(p) for p in items]
    if all(p.endswith(".parquet") or Path(p).is_dir() for p in paths):
        return paths
    return None


def pick_columns(available: Sequence[str], model: ShippedModel) -> list[str]:
    """The columns that are the model's values, in the model's order."""
    available = [str(c) for c in available]
    keys = model.input_keys
    if keys is None:
        return available
    missing = [k for k in keys if k not in set(available)]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"model {model.name!r} takes columns the data does not have: {shown}")
    return keys


def stack_columns(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Columns as one 2-D array of their common type (integers stay integers; with
    floats among them, float64, which the model's input then checks exactly)."""
    arrays = [np.asarray(c) for c in columns]
    for position, array in enumerate(arrays):
        if array.ndim != 1 or array.dtype.kind not in "biuf":
            raise ValueError(f"column {position} is not flat numbers ({array.dtype}, "
                             f"{array.ndim}-D)")
    return np.stack(arrays, axis=1) if arrays else np.empty((0, 0))


def frame_rows(frame: Any, columns: Sequence[str]) -> np.ndarray:
    """A pandas DataFrame's ``columns`` as 2-D rows."""
    return stack_columns([frame[c].to_numpy() for c in columns])


def record_fields(array: Any) -> list[str]:
    """The fields of an awkward (or dask-awkward) array of records."""
    fields = list(getattr(array, "fields", []) or [])
    if not fields:
        raise ValueError("an awkward array to score must be an array of records "
                         "(one field per column)")
    return fields


def awkward_rows(array: Any, columns: Sequence[str]) -> np.ndarray:
    """An awkward array of records' flat numeric ``columns`` as 2-D rows."""
    import awkward as ak

    out = []
    for name in columns:
        try:
            out.append(ak.to_numpy(array[name]))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"field {name!r} is not a flat numeric field: {exc}") from None
    return stack_columns(out)


def numpy_rows(array: np.ndarray) -> np.ndarray:
    """A 2-D array of rows (one row per event)."""
    if array.ndim != 2:
        raise ValueError(f"a numpy array to score must be 2-D (rows), not {array.ndim}-D")
    return array
