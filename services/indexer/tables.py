"""The index's tables (DuckDB), created once per database file, and opening that file.

Every time is Unix seconds as DOUBLE (see the package docstring for why). Uniqueness is kept by the writer
(`writer.py`), not by DuckDB indexes: ART indexes must fit in memory and slow bulk inserts, while the writer's
anti-joins only touch the time range of each batch (row groups outside it are skipped by their min/max).
"""

import logging
from pathlib import Path
from typing import Any

import duckdb

from spectare.core.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    stream VARCHAR PRIMARY KEY,         -- JetStream stream name (FOOTAGE, DETECTIONS, with the prefix)
    last_seq BIGINT NOT NULL,           -- last stream sequence committed here; consumers restart after it
    messages BIGINT NOT NULL,           -- messages taken from the stream (garbage included)
    garbage BIGINT NOT NULL             -- of which terminated: undecodable, unknown kind, inconsistent
);
CREATE TABLE IF NOT EXISTS cameras (
    name VARCHAR PRIMARY KEY,
    friendly_name VARCHAR NOT NULL,
    url VARCHAR,                        -- password redacted (rtsp://user:***@host/...)
    detect BOOLEAN,
    segment_seconds INTEGER,
    labels VARCHAR[],                   -- NULL: the detector's default labels
    min_score DOUBLE,
    created_at DOUBLE,
    updated_at DOUBLE,
    removed_at DOUBLE,                  -- NULL while registered; a removed camera's footage stays searchable
    revision BIGINT NOT NULL            -- registry (KV) revision last applied
);
CREATE TABLE IF NOT EXISTS chunks (
    camera VARCHAR NOT NULL,
    start_time DOUBLE NOT NULL,         -- wall time of the first frame
    end_time DOUBLE NOT NULL,           -- wall time the last frame ends (= the next chunk's start_time)
    key VARCHAR NOT NULL,               -- S3 object key; unique
    bucket VARCHAR NOT NULL,
    session VARCHAR NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    frames BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    codec VARCHAR NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    stream_seq BIGINT NOT NULL          -- FOOTAGE stream sequence of the announcement
);
CREATE TABLE IF NOT EXISTS gaps (
    camera VARCHAR NOT NULL,
    start_time DOUBLE NOT NULL,         -- unique with camera
    end_time DOUBLE,                    -- NULL while the camera is still away
    reason VARCHAR NOT NULL,
    session VARCHAR,                    -- session of the footage before the gap
    stream_seq BIGINT NOT NULL          -- FOOTAGE stream sequence of the latest announcement of this gap
);
CREATE TABLE IF NOT EXISTS detections (
    camera VARCHAR NOT NULL,
    time DOUBLE NOT NULL,               -- wall time of the keyframe
    label VARCHAR NOT NULL,
    class_id INTEGER NOT NULL,
    score DOUBLE NOT NULL,
    x1 DOUBLE NOT NULL,                 -- box, as shares of the picture's width and height
    y1 DOUBLE NOT NULL,
    x2 DOUBLE NOT NULL,
    y2 DOUBLE NOT NULL,
    model VARCHAR NOT NULL,
    session VARCHAR NOT NULL,
    seq BIGINT NOT NULL,                -- keyframe's packet sequence in its session
    idx INTEGER NOT NULL,               -- index in the keyframe (score order); unique with camera, session, seq
    snapshot_key VARCHAR,
    chunk_key VARCHAR,                  -- the chunk holding `time`; NULL until that chunk is indexed
    stream_seq BIGINT NOT NULL          -- DETECTIONS stream sequence
);
CREATE TABLE IF NOT EXISTS events (
    camera VARCHAR NOT NULL,
    object_id VARCHAR NOT NULL,         -- unique with camera: one row per tracked object
    label VARCHAR NOT NULL,
    first_seen DOUBLE NOT NULL,
    last_seen DOUBLE NOT NULL,          -- as the latest message tells (a still object sends none)
    top_score DOUBLE NOT NULL,
    snapshot_key VARCHAR,               -- best snapshot, as the latest message naming one tells
    x1 DOUBLE NOT NULL,                 -- last box
    y1 DOUBLE NOT NULL,
    x2 DOUBLE NOT NULL,
    y2 DOUBLE NOT NULL,
    zones VARCHAR[] NOT NULL,           -- zones it is in, as of the latest message
    entered_zones VARCHAR[] NOT NULL,   -- every zone it entered, in order
    stationary BOOLEAN NOT NULL,
    ended_at DOUBLE,                    -- time of its `end`; NULL while it is tracked
    seq BIGINT NOT NULL,                -- highest message seq applied (0: its `new`); later fields come from it
    session VARCHAR NOT NULL,
    keyframe_seq BIGINT NOT NULL,
    stream_seqs BIGINT[] NOT NULL,      -- EVENTS stream sequences of its messages (retention deletes them)
    stream_seq BIGINT NOT NULL          -- the highest of them
);
"""

# Tables whose rows come from the streams: a rebuild from the streams gives them the same contents.
STREAM_TABLES = ("chunks", "gaps", "detections", "events")
TABLES = ("cameras", *STREAM_TABLES, "progress", "meta")


def open_database(path: Path, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the index file read-write, with every table in place.

    External access (files, extensions, environment) is switched off for the whole database: the index never
    needs it, and the `sql` endpoint then cannot read the server's files or environment. Exports write through
    pyarrow (`connection.execute(...).fetch_record_batch()`), not `COPY ... TO`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "enable_external_access": False, "python_enable_replacements": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        raise ConfigError(f"cannot open the index database {path}: {first_line(exc)}") from None
    con.execute(DDL)
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        log.info("created index database %s (schema v%d)", path, SCHEMA_VERSION)
    elif row[0] != str(SCHEMA_VERSION):
        con.close()
        raise ConfigError(f"index database {path} has schema v{row[0]}, this Spectare uses v{SCHEMA_VERSION}: "
                          "stop the indexer and delete the file to rebuild it from the streams")
    return con


def one_row(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a query that always answers one (an aggregate, EXISTS)."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("a one-row query answered no row")
    return row


def first_line(exc: BaseException) -> str:
    """The first line of a DuckDB error (the rest repeats the query with a caret)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
