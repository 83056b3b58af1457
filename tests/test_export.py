"""Parquet export to a real S3: partitions by date and camera that DuckDB reads back with the same rows, and
a second run that rewrites only the partitions that gained rows."""

import duckdb
import pytest

from spectare.core.store import ensure_bucket, s3_client
from spectare.indexer.export import export_once
from spectare.indexer.tables import DDL

DAY = 86_400.0
T0 = 1_795_824_000.0  # 2026-11-28T00:00:00Z


def add_rows(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, float]], first_seq: int) -> None:
    for seq, (camera, t) in enumerate(rows, first_seq):
        con.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, 'b', 's', 0, 9, 10, 1000, 'h264', 64, 64, ?)",
                    [camera, t, t + 10, f"footage/{camera}/{seq}.mp4", seq])
        con.execute("INSERT INTO detections VALUES (?, ?, 'person', 0, 0.9, 0, 0, 1, 1, 'm', 's', ?, 0, NULL, ?, ?)",
                    [camera, t + 1, seq, f"footage/{camera}/{seq}.mp4", seq])


@pytest.fixture
def index(tmp_path):
    con = duckdb.connect(str(tmp_path / "index.duckdb"), config={"enable_external_access": False})  # as the indexer
    con.execute(DDL)
    con.execute("INSERT INTO cameras VALUES ('porch', 'Porch', 'rtsp://x', true, 10, NULL, NULL, 0, 0, NULL, 1)")
    yield con
    con.close()


def read_back(settings, tmp_path, table: str) -> list[tuple]:
    """Download the exported table and read it with plain DuckDB, partitions as columns: (camera, date, chunk)."""
    s3 = s3_client(settings.s3)
    folder = tmp_path / "download"
    for obj in s3.list_objects(settings.s3.bucket, prefix=f"parquet/{table}/", recursive=True):
        s3.fget_object(settings.s3.bucket, obj.object_name, str(folder / obj.object_name))
    chunk = "key" if table == "chunks" else "chunk_key"
    return duckdb.sql(f"""SELECT camera, date::VARCHAR, {chunk} FROM read_parquet(
                          '{folder}/parquet/{table}/*/*/*.parquet', hive_partitioning = true) ORDER BY 3""").fetchall()


async def test_export_partitions_by_date_and_camera_and_reexports_only_what_changed(settings, index, tmp_path):
    ensure_bucket(settings.s3)
    s3 = s3_client(settings.s3)

    async def run(job):  # the indexer's write(job), on this test's database
        return job(index.cursor())

    add_rows(index, [("porch", T0 + 10), ("porch", T0 + DAY + 10), ("yard", T0 + 20)], 1)
    first = await export_once(run, s3, settings.s3.bucket, "parquet")
    assert (first.tables, first.rows) == ({"chunks": 3, "detections": 3}, 6)
    expected = [("porch", "2026-11-28", "footage/porch/1.mp4"), ("porch", "2026-11-29", "footage/porch/2.mp4"),
                ("yard", "2026-11-28", "footage/yard/3.mp4")]
    assert read_back(settings, tmp_path / "a", "chunks") == expected
    assert read_back(settings, tmp_path / "a", "detections") == expected
    keys = {o.object_name for o in s3.list_objects(settings.s3.bucket, prefix="parquet/", recursive=True)}
    assert "parquet/chunks/date=2026-11-28/camera=porch/part0.parquet" in keys and "parquet/cameras.parquet" in keys

    assert (await export_once(run, s3, settings.s3.bucket, "parquet")).partitions == 0, "nothing new: nothing written"

    add_rows(index, [("porch", T0 + DAY + 500)], 10)
    second = await export_once(run, s3, settings.s3.bucket, "parquet")
    assert second.tables == {"chunks": 1, "detections": 1} and second.rows == 4, "only porch's 2026-11-29, whole"
    assert read_back(settings, tmp_path / "b", "chunks") == sorted(
        [*expected, ("porch", "2026-11-29", "footage/porch/10.mp4")], key=lambda r: r[2])
