"""The incident rule, in one place: detections of one label on one camera, in time order, belong to one
incident while each is less than `merge_gap_s` after the one before it. An incident runs from its first to its
last detection; its score is the best detection's; its snapshot is that of the best-scoring detection that
has one. Only detections inside the searched range (and above the minimum score) count.

The rule runs inside DuckDB (window functions over the matching detections), so a search over millions of
detections never leaves the database; `window_sql` and `incident_sql` build the statements (pure),
`find_incidents` runs them, and the unit tests run it on an in-memory database, table-driven. A search returns
the latest `limit` incidents (by start) and the number of all.
"""

import dataclasses
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class IncidentFilter:
    start: float
    end: float
    merge_gap_s: float
    limit: int
    camera: str | None = None
    label: str | None = None
    min_score: float | None = None
    outside_events: bool = False  # only where the index has no events: cameras without any, times before the first


# Detections from the moment a camera's first tracked-object event starts are told as events instead.
OUTSIDE_EVENTS = """NOT EXISTS (SELECT 1 FROM (SELECT camera, min(first_seen) AS since FROM events GROUP BY camera) es
                   WHERE es.camera = detections.camera AND detections.time >= es.since)"""


def _matching(f: IncidentFilter, columns: str) -> tuple[str, dict[str, object]]:
    where = ["time BETWEEN $start AND $end"]
    params: dict[str, object] = {"start": f.start, "end": f.end, "gap": f.merge_gap_s}
    for column, value in (("camera", f.camera), ("label", f.label)):
        if value is not None:
            where.append(f"{column} = ${column}")
            params[column] = value
    if f.min_score is not None:
        where.append("score >= $min_score")
        params["min_score"] = f.min_score
    if f.outside_events:
        where.append(OUTSIDE_EVENTS)
    return f"SELECT {columns} FROM detections WHERE {' AND '.join(where)}", params


def window_sql(f: IncidentFilter) -> tuple[str, dict[str, object]]:
    """Step 1, on time alone: (total incidents, `cutoff` = start of the `limit`-th latest, `lo` = where the
    incidents reaching `cutoff` start: the earliest detection step 2 must see)."""
    matching, params = _matching(f, "camera, label, time")
    sql = f"""
WITH matching AS ({matching}),
starts AS (
    SELECT camera, label, time FROM (
        SELECT *, time - lag(time) OVER (PARTITION BY camera, label ORDER BY time) AS since FROM matching)
    WHERE since IS NULL OR since >= $gap
), cut AS (SELECT min(time) AS cutoff FROM (SELECT time FROM starts ORDER BY time DESC LIMIT $limit))
SELECT (SELECT count(*) FROM starts), cut.cutoff, (
    SELECT min(opened) FROM (SELECT max(time) AS opened FROM starts WHERE time <= cut.cutoff GROUP BY camera, label)
) FROM cut
"""
    return sql, {**params, "limit": f.limit}


def incident_sql(f: IncidentFilter, lo: float, cutoff: float) -> tuple[str, dict[str, object]]:
    """Step 2: the incidents starting at or after `cutoff` (camera, label, start, end, detections, max_score,
    snapshot_row), newest first, from the detections after `lo`. `snapshot_row` is the rowid of the detection
    whose snapshot shows the incident (`SNAPSHOTS_BY_ROWID` gives its key: decoding every matching detection's
    key costs more than the rest of the search)."""
    narrowed = dataclasses.replace(f, start=max(f.start, lo))
    matching, params = _matching(narrowed, "camera, label, time, score, rowid AS id, snapshot_key IS NOT NULL "
                                           "AS has_snapshot")
    sql = f"""
WITH matching AS ({matching}),
marked AS (
    SELECT *, CASE WHEN time - lag(time) OVER (PARTITION BY camera, label ORDER BY time) < $gap THEN 0 ELSE 1 END
              AS opens
    FROM matching
), numbered AS (
    SELECT *, sum(opens) OVER (PARTITION BY camera, label ORDER BY time ROWS UNBOUNDED PRECEDING) AS incident
    FROM marked
), incidents AS (
    SELECT camera, label, min(time) AS start, max(time) AS "end", count(*) AS detections, max(score) AS max_score,
           arg_max(id, score) FILTER (WHERE has_snapshot) AS snapshot_row
    FROM numbered GROUP BY camera, label, incident
)
SELECT * FROM incidents WHERE start >= $cutoff ORDER BY start DESC, camera, label LIMIT $limit
"""
    return sql, {**params, "cutoff": cutoff, "limit": f.limit}


def find_incidents(cur: duckdb.DuckDBPyConnection, f: IncidentFilter) -> tuple[list[tuple], int]:
    """The latest `limit` incidents (by start; newest first) and how many there are in all. Two steps, so that
    only the detections of the incidents returned are aggregated."""
    sql, params = window_sql(f)
    total, cutoff, lo = cur.execute(sql, params).fetchall()[0]
    if not total:
        return [], 0
    sql, params = incident_sql(f, lo if lo is not None else cutoff, cutoff)
    return cur.execute(sql, params).fetchall(), total


# Chunks covering each incident, in two steps. 1: which chunk rows (`wanted`: row, camera, start, end, registered
# from Arrow). A plain join on camera degenerates when many incidents share a camera (every chunk of the camera
# meets every incident), so both sides also meet on a time bucket: a chunk is in the bucket of its start, an
# incident asks for every bucket from (its start - the longest chunk) to its end. 2: the rows' keys, by rowid
# (decoding the keys of every chunk the first step reads costs more than the rest together).
BUCKET_S = 600.0

COVERING_CHUNK_ROWS = """
WITH w AS (
    SELECT row, camera, start, "end",
           unnest(range(floor((start - $longest) / $bucket)::BIGINT, floor("end" / $bucket)::BIGINT + 1)) AS bucket
    FROM wanted
)
SELECT w.row, c.rowid FROM w JOIN chunks c
    ON c.camera = w.camera AND floor(c.start_time / $bucket)::BIGINT = w.bucket
   AND c.start_time <= w."end" AND c.end_time > w.start
WHERE c.start_time <= $hi AND c.end_time > $lo - $longest
"""

SNAPSHOTS_BY_ROWID = """
SELECT rowid, snapshot_key FROM detections WHERE rowid IN (SELECT unnest($ids))
"""

CHUNKS_BY_ROWID = """
SELECT rowid, key, bucket, start_time, end_time, bytes FROM chunks WHERE rowid IN (SELECT unnest($ids))
"""
