"""Engine ``local``: the kernel's own process, in batches, for data that fits one node."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from . import runtime
from .inputs import awkward_rows, frame_rows, numpy_rows, parquet_paths, pick_columns, record_fields
from .outputs import write_local
from .progress import bar
from .shipped import ShippedModel


def _batches(model: ShippedModel, rows: np.ndarray, batch_rows: int | None,
             progress: bool) -> np.ndarray:
    step = int(batch_rows or runtime.BATCH_ROWS)
    starts = range(0, rows.shape[0], step)
    with bar(total=rows.shape[0], enabled=progress, unit="rows") as shown:
        pieces = []
        for index, start in enumerate(starts):
            pieces.append(runtime.score_partition(model, rows[start : start + step], step,
                                                  index))
            shown.update(pieces[-1].shape[0])
    if not pieces:
        return runtime.score_rows(model, rows[:0])
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _root_scores(model: ShippedModel, data: Any, batch_rows: int | None) -> Iterator[np.ndarray]:
    """Scores of each step of entries read from the ROOT files."""
    import uproot

    branches = list(data.branches or model.input_keys or [])
    if not branches:
        raise ValueError("give RootFiles(..., branches=[...]): the model lists no keys")
    for index, arrays in enumerate(uproot.iterate(data.specs(), branches, library="np",
                                                  step_size=data.step_size, **data.options)):
        rows = np.stack([arrays[b] for b in branches], axis=1)
        yield runtime.score_partition(model, rows, batch_rows, index)


def score_local(model: ShippedModel, data: Any, kind: str, *, output: str | None,
                batch_rows: int | None, progress: bool) -> Any:
    """Scores of ``data`` computed here; of its kind, or written to ``output``."""
    names = model.score_names
    index = None
    if kind == "numpy":
        scores = _batches(model, numpy_rows(data), batch_rows, progress)
        result: Any = scores
    elif kind in ("pandas", "parquet"):
        if kind == "parquet":
            import pandas as pd

            data = pd.concat([pd.read_parquet(p) for p in parquet_paths(data) or []])
        scores = _batches(model, frame_rows(data, pick_columns(list(data.columns), model)),
                          batch_rows, progress)
        index = data.index
        result = None
    elif kind == "awkward":
        scores = _batches(model, awkward_rows(data, pick_columns(record_fields(data), model)),
                          batch_rows, progress)
        result = None
    elif kind == "root":
        pieces = list(_root_scores(model, data, batch_rows))
        scores = np.concatenate(pieces) if pieces else runtime.score_rows(
            model, np.empty((0, len(data.branches or model.input_keys or [])), np.float32))
        result = None
    else:
        raise TypeError(f"engine 'local' cannot score {kind} data: use its engine "
                        f"(engine='dask' or 'spark')")
    if output is not None:
        return write_local(model, scores, output)
    if result is not None:
        return result
    if kind in ("pandas", "parquet"):
        import pandas as pd

        return pd.DataFrame(scores, columns=names, index=index)
    import awkward as ak

    return ak.zip({name: scores[:, i] for i, name in enumerate(names)})
