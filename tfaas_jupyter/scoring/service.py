"""Engine ``service``: the rows sent to the server in batches, through
``TFaaSClient.predict`` (for machines that reach the server but have no TensorFlow).

The client given to ``score`` is the one that sends them: made with a predict-only TFaaS
key, it holds no full token. Nothing is fetched or shipped: the server's worker scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..client.present import output_labels
from .inputs import frame_rows, numpy_rows, parquet_paths
from .progress import bar
from .runtime import BATCH_ROWS


def _output_dtype(detail: dict[str, Any]) -> np.dtype | None:
    """The outputs' one dtype when they share one (predict answers float64 or int64)."""
    dtypes = {str(o.get("dtype")) for o in detail.get("outputs") or []}
    return np.dtype(dtypes.pop()) if len(dtypes) == 1 else None


def score_service(client: Any, name: str, version: Any, data: Any, kind: str, *,
                  batch_rows: int | None, progress: bool) -> Any:
    """Scores of eager ``data`` (numpy, pandas, Parquet) answered by the server."""
    detail = client.model(name)
    keys = None
    index = None
    if kind == "numpy":
        rows = numpy_rows(data)
    elif kind in ("pandas", "parquet"):
        if kind == "parquet":
            import pandas as pd

            data = pd.concat([pd.read_parquet(p) for p in parquet_paths(data) or []])
        keys = [str(c) for c in data.columns]
        rows = frame_rows(data, keys)
        index = data.index
    else:
        raise TypeError(f"engine 'service' scores numpy, pandas or Parquet data, not {kind}")
    step = int(batch_rows or BATCH_ROWS)
    pieces = []
    with bar(total=len(rows), enabled=progress, unit="rows") as shown:
        for start in range(0, len(rows), step):
            pieces.append(client.predict(name, rows[start : start + step], keys=keys,
                                         version=version))
            shown.update(pieces[-1].shape[0])
    scores = np.concatenate(pieces) if pieces else np.empty((0, 0))
    dtype = _output_dtype(detail)
    if dtype is not None and dtype.kind in "fiu":
        scores = scores.astype(dtype)  # exact: the float64 of a float32 output holds it
    if index is None:
        return scores
    import pandas as pd

    return pd.DataFrame(scores, columns=output_labels(detail, scores.shape[1]), index=index)
