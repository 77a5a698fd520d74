"""Scores written as Parquet, with what scored them in the files' metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .shipped import ShippedModel


def scores_table(model: ShippedModel, scores: np.ndarray) -> Any:
    """A pyarrow Table of the score columns, the model's name, version and content hash
    in its schema metadata."""
    import pyarrow as pa

    table = pa.table({name: scores[:, i] for i, name in enumerate(model.score_names)})
    return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                          **{k.encode(): v.encode()
                                             for k, v in model.metadata.items()}})


def write_local(model: ShippedModel, scores: np.ndarray, output: str) -> str:
    """``output`` (a folder) with one Parquet file of the scores; answers the folder."""
    import pyarrow.parquet as pq

    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(scores_table(model, scores), folder / "part.0.parquet")
    return str(folder)


def read_metadata(path: str) -> dict[str, str]:
    """The ``tfaas.*`` metadata of a Parquet file written by ``score``."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"tfaas.")}
