"""Parquet export: footage and detections, partitioned by date (UTC) and camera, to S3, so any DuckDB (or
Spark, pandas, ...) user can query months of history without touching the live index:

    <prefix>/chunks/date=2026-11-27/camera=porch/part0.parquet
    <prefix>/gaps/date=.../camera=.../part0.parquet
    <prefix>/detections/date=.../camera=.../part0.parquet
    <prefix>/events/date=.../camera=.../part0.parquet       (date of first_seen; a later message of an object
                                                              re-exports its partition: its stream_seq grew)
    <prefix>/cameras.parquet

Each run re-exports, whole, the partitions that gained rows since the last run (rows' stream sequences
above the one remembered in the `meta` table), so a partition's file always holds all of its rows the index
had at export time. The index's connection has DuckDB's external access off (no file or network I/O from
SQL), so rows come out as Arrow and pyarrow writes the files to a local folder; the S3 client uploads them.
Partitions of days that retention has since emptied are not rewritten: the archive keeps the history of
footage that is gone.
"""

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from minio import Minio

log = logging.getLogger(__name__)

# table -> its time column
TABLES = {"chunks": "start_time", "gaps": "start_time", "detections": "time", "events": "first_seen"}
DATE = "strftime(to_timestamp({column}) AT TIME ZONE 'UTC', '%Y-%m-%d')"


@dataclass
class ExportReport:
    partitions: int = 0
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    tables: dict[str, int] = field(default_factory=dict)  # partitions per table


def _meta_key(table: str) -> str:
    return f"export.{table}.last_stream_seq"


def write_partitions(cur: duckdb.DuckDBPyConnection, out: Path) -> tuple[ExportReport, dict[str, int]]:
    """Write the partitions touched since the last export under `out` (read-only on the index); return what
    was written and, per table, the stream sequence it covers (to remember once uploaded)."""
    report, marks = ExportReport(), {}
    for table, column in TABLES.items():
        # fetchall, not fetchone: DuckDB keeps a half-read result open and refuses the next query on the cursor.
        row = cur.execute("SELECT value FROM meta WHERE key = $k", {"k": _meta_key(table)}).fetchall()
        since = int(row[0][0]) if row else -1
        top = cur.execute(f"SELECT max(stream_seq) FROM {table}").fetchall()[0][0]
        if top is None or top <= since:
            continue
        selected = f"""WITH all_rows AS (SELECT *, {DATE.format(column=column)} AS date FROM {table}),
                            touched AS (SELECT DISTINCT date, camera FROM all_rows WHERE stream_seq > {since})
                       SELECT all_rows.* FROM all_rows SEMI JOIN touched USING (date, camera)
                       ORDER BY camera, {column}"""
        rows_table = cur.sql(selected).to_arrow_table()
        count = len({(d, c) for d, c in zip(rows_table["date"].to_pylist(), rows_table["camera"].to_pylist(),
                                             strict=True)})
        rows = rows_table.num_rows
        pq.write_to_dataset(rows_table, out / table, partition_cols=["date", "camera"],
                            basename_template="part{i}.parquet", existing_data_behavior="delete_matching")
        report.tables[table] = count
        report.partitions += count
        report.rows += rows
        marks[table] = top
    if marks:
        pq.write_table(cur.sql("SELECT * FROM cameras ORDER BY name").to_arrow_table(), out / "cameras.parquet")
    return report, marks


def upload(s3: Minio, bucket: str, prefix: str, folder: Path, report: ExportReport) -> None:
    """Each written partition replaces the objects of the same partition in S3 (a file count that shrank
    leaves nothing stale)."""
    for part in sorted({p.parent for p in folder.rglob("*.parquet")}):
        relative = part.relative_to(folder).as_posix()
        key_prefix = f"{prefix}/{relative}/" if relative != "." else None
        if key_prefix:
            for stale in s3.list_objects(bucket, prefix=key_prefix, recursive=True):
                s3.remove_object(bucket, stale.object_name)
        for file in sorted(part.glob("*.parquet")):
            key = f"{prefix}/{file.relative_to(folder).as_posix()}"
            s3.fput_object(bucket, key, str(file), content_type="application/vnd.apache.parquet")
            report.files += 1
            report.bytes += file.stat().st_size


def remember(cur: duckdb.DuckDBPyConnection, marks: dict[str, int]) -> None:
    for table, seq in marks.items():
        cur.execute("INSERT OR REPLACE INTO meta VALUES ($k, $v)", {"k": _meta_key(table), "v": str(seq)})


async def export_once(write: Callable[[Callable[[duckdb.DuckDBPyConnection], Any]], Awaitable[Any]], s3: Minio,
                      bucket: str, prefix: str) -> ExportReport:
    """One export: `write(job)` runs `job(cursor)` on the index in the writer's turn; uploads run in a thread."""
    began = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="spectare-export-"))
    try:
        report, marks = await write(lambda cur: write_partitions(cur, folder))
        if marks:
            await asyncio.to_thread(upload, s3, bucket, prefix, folder, report)
            await write(lambda cur: remember(cur, marks))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report.seconds = time.perf_counter() - began
    if report.partitions:
        log.info("exported %d partitions (%d rows, %d files, %.1f MB) to %s/ in %.1fs", report.partitions,
                 report.rows, report.files, report.bytes / 1e6, prefix, report.seconds)
    return report
