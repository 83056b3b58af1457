"""The incident rule, in one place: detections of one label on one camera, in time order, belong to one
incident while each is less than `merge_gap_s` after the one before it. An incident runs from its first to its
last detection; its score is the best detection's; its snapshot is that of the best-scoring detection that
has one. Only detections inside the searched range (and above the minimum score) count.

The rule runs inside DuckDB (window functions over the matching detections), so a search over millions of
detections never leaves the database; `incident_sql` builds the statement and its parameters (pure), and the
unit tests run it on an in-memory database, table-driven.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class IncidentFilter:
    start: float
    end: float
    merge_gap_s: float
    limit: int
    camera: str | None = None
    label: str | None = None
    min_score: float | None = None


def incident_sql(f: IncidentFilter) -> tuple[str, dict[str, object]]:
    """SQL giving the latest `limit` incidents (camera, label, start, end, detections, max_score, snapshot_key,
    total), newest first; `total` counts every incident found."""
    where = ["time BETWEEN $start AND $end"]
    params: dict[str, object] = {"start": f.start, "end": f.end, "gap": f.merge_gap_s, "limit": f.limit}
    if f.camera is not None:
        where.append("camera = $camera")
        params["camera"] = f.camera
    if f.label is not None:
        where.append("label = $label")
        params["label"] = f.label
    if f.min_score is not None:
        where.append("score >= $min_score")
        params["min_score"] = f.min_score
    sql = f"""
WITH matching AS (
    SELECT camera, label, time, score, snapshot_key FROM detections WHERE {' AND '.join(where)}
), marked AS (
    SELECT *, CASE WHEN time - lag(time) OVER (PARTITION BY camera, label ORDER BY time) < $gap THEN 0 ELSE 1 END
              AS opens
    FROM matching
), numbered AS (
    SELECT *, sum(opens) OVER (PARTITION BY camera, label ORDER BY time ROWS UNBOUNDED PRECEDING) AS incident
    FROM marked
), incidents AS (
    SELECT camera, label, min(time) AS start, max(time) AS "end", count(*) AS detections, max(score) AS max_score,
           arg_max(snapshot_key, score) AS snapshot_key
    FROM numbered GROUP BY camera, label, incident
)
SELECT *, count(*) OVER () AS total FROM incidents ORDER BY "end" DESC, camera, label LIMIT $limit
"""
    return sql, params


# Chunks covering each incident (registered as `wanted`: row, camera, start, end), in time order.
COVERING_CHUNKS = """
SELECT w.row, c.key, c.bucket, c.start_time, c.end_time, c.bytes
FROM wanted w JOIN chunks c ON c.camera = w.camera AND c.start_time <= w."end" AND c.end_time > w.start
WHERE c.start_time <= $hi AND c.end_time > $lo
ORDER BY w.row, c.start_time, c.key
"""
