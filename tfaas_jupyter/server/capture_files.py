"""The capture's files: their names by hour, the merge of an hour's files into one,
and reading them back (see :mod:`.capture` for the writing).

A model's folder holds, per hour (UTC), the files of the writer's takes,
``NAME-YYYYMMDD-HH-<n>.parquet``, and once the hour is over the merged ones,
``NAME-YYYYMMDD-HH.parquet`` and ``NAME-YYYYMMDD-HH.<k>.parquet`` (one per set of
columns). A merged file names the files it holds in its Parquet metadata, so a merge
cut short leaves nothing that is read twice.

pyarrow is imported inside the functions: a server without capture never loads it.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: Rows gathered from an hour's files before they are written as one row group of the
#: merged file (which so never holds the whole hour in memory).
MERGE_ROWS = 65_536
#: The key, in a merged file's Parquet metadata, of the names of the files it holds.
MERGED_FROM = b"tfaas.merged_from"
HOUR_FORMAT = "%Y%m%d-%H"


def hour_start(hour: str) -> float:
    return datetime.strptime(hour, HOUR_FORMAT).replace(tzinfo=timezone.utc).timestamp()


def hour_files(folder: Path, model: str) -> dict[str, tuple[list[Path], list[Path]]]:
    """A model folder's capture files by hour ("YYYYMMDD-HH"): (merged files, files of
    one take), each sorted by name. Other files are not the capture's and are left out."""
    found: dict[str, tuple[list[Path], list[Path]]] = {}
    prefix = f"{model}-"
    for path in sorted(folder.glob(f"{prefix}*.parquet")):
        hour, rest = path.name[len(prefix):len(prefix) + 11], path.name[len(prefix) + 11:]
        try:
            hour_start(hour)
        except ValueError:
            continue
        merged, parts = found.setdefault(hour, ([], []))
        (parts if rest.startswith("-") else merged).append(path)
    return found


def merged_from(paths: Sequence[Path]) -> set[str]:
    """The names of the files that the merged files ``paths`` hold."""
    import pyarrow.parquet as pq

    names: set[str] = set()
    for path in paths:
        metadata = pq.read_metadata(path).metadata or {}
        names.update(json.loads(metadata.get(MERGED_FROM, b"[]")))
    return names


def merge_hour(folder: Path, model: str, hour: str) -> bool:
    """Merge the files of the takes of ``hour`` in ``model``'s ``folder`` into one file
    per set of columns (a file that this hour's merge made before included); False
    when there were none. Each merged file is complete on disk, naming what it holds,
    before the files it holds are removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    merged, parts = hour_files(folder, model).get(hour, ([], []))
    held = merged_from(merged)
    for path in parts:  # left by a merge that was cut short: already in a merged file
        if path.name in held:
            path.unlink(missing_ok=True)
    parts = [path for path in parts if path.name not in held]
    if not parts:
        return False
    before = {pq.read_schema(path).remove_metadata(): path for path in merged}
    taken = {path.name for path in merged}
    outputs: dict[pa.Schema, _MergedFile] = {}
    try:
        for path in parts:
            table = pq.read_table(path)
            schema = table.schema.remove_metadata()
            out = outputs.get(schema)
            if out is None:
                if schema in before:  # a late take: into the hour's file of its columns
                    out = _MergedFile(before[schema], schema)
                    out.add_merged(before[schema])
                else:
                    k = 1
                    while (name := f"{model}-{hour}{f'.{k}' if k > 1 else ''}.parquet"
                           ) in taken:
                        k += 1
                    taken.add(name)
                    out = _MergedFile(folder / name, schema)
                outputs[schema] = out
            out.add(path.name, table)
        for out in outputs.values():
            out.finish()
    except BaseException:
        for out in outputs.values():
            out.abandon()
        raise
    for path in parts:
        path.unlink(missing_ok=True)
    return True


class _MergedFile:
    """One merged file being written: rows gathered up to ``MERGE_ROWS``, then written
    as a row group, to a private temporary file that replaces ``path`` at the end."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.tmp = path.with_suffix(".merging")
        os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        self.writer = pq.ParquetWriter(str(self.tmp), schema, use_dictionary=False)
        self.names: list[str] = []
        self.tables: list[Any] = []
        self.rows = 0

    def add(self, name: str, table: Any) -> None:
        self.names.append(name)
        self.tables.append(table)
        self.rows += table.num_rows
        if self.rows >= MERGE_ROWS:
            self._write()

    def add_merged(self, path: Path) -> None:
        """What an earlier merge of the hour wrote, a row group at a time."""
        import pyarrow.parquet as pq

        self.names.extend(merged_from([path]))
        source = pq.ParquetFile(path)
        for i in range(source.num_row_groups):
            self.writer.write_table(source.read_row_group(i).replace_schema_metadata())

    def _write(self) -> None:
        import pyarrow as pa

        if self.tables:
            self.writer.write_table(pa.concat_tables(self.tables))
        self.tables, self.rows = [], 0

    def finish(self) -> None:
        self._write()
        self.writer.add_key_value_metadata({MERGED_FROM: json.dumps(sorted(self.names))})
        self.writer.close()
        os.replace(self.tmp, self.path)

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def read_capture(folder: Path, model: str, since: datetime | None = None,
                 until: datetime | None = None) -> bytes:
    """The captured predictions of ``model`` (those from ``since`` on and before
    ``until``, when given: aware datetimes) as one Parquet file's bytes (an empty
    table when none), for ``GET tfaas/capture/NAME``. Only the hours in that range
    are read."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    low = since.timestamp() if since is not None else float("-inf")
    high = until.timestamp() if until is not None else float("inf")
    files: list[Path] = []
    for hour, (merged, parts) in sorted(hour_files(Path(folder) / model, model).items()):
        start = hour_start(hour)
        if start + 3600 <= low or start >= high:
            continue
        held = merged_from(merged)
        files += merged + [path for path in parts if path.name not in held]
    tables = [pq.read_table(p) for p in files]
    table = _concat(tables) if tables else pa.table({})
    if tables and (since is not None or until is not None):
        keep = None
        for bound, compare in ((since, pc.greater_equal), (until, pc.less)):
            if bound is not None:
                test = compare(table["time"], pa.scalar(bound, pa.timestamp("us", "UTC")))
                keep = test if keep is None else pc.and_(keep, test)
        table = table.filter(keep)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue())


def _concat(tables: list[Any]) -> Any:
    """One table of ``tables``, a column missing from some null there. A column whose
    type differs between them (a version that returns float64 where the one before
    returned float32) becomes a column per type, named with its dtype
    (``output:y:float32``, ``output:y:float64``): every value keeps its own."""
    import pyarrow as pa

    types: dict[str, set[Any]] = {}
    for table in tables:
        for column in table.schema:
            types.setdefault(column.name, set()).add(column.type)
    clashing = {name for name, kinds in types.items() if len(kinds - {pa.null()}) > 1}
    if clashing:
        tables = [table.rename_columns([
            f"{column.name}:{_dtype_name(column.type)}" if column.name in clashing
            else column.name for column in table.schema]) for table in tables]
    return pa.concat_tables(tables, promote_options="default")


def _dtype_name(kind: Any) -> str:
    """numpy's name of a column type's values (``float32``), Arrow's for the rest."""
    values = getattr(kind, "value_type", kind)
    try:
        return str(np.dtype(values.to_pandas_dtype()))
    except (NotImplementedError, TypeError):
        return str(values)
