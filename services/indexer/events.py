"""The event search: tracked objects (rows of `events`) whose time range overlaps the searched one, the latest
`limit` by first_seen, with the number of all. Filters: camera, label, a zone the object entered, a minimum top
score. Pure SQL building (`event_sql`) apart from running it (`find_events`), so the unit tests run it on an
in-memory database, table-driven."""

from dataclasses import dataclass

import duckdb

COLUMNS = ("camera, object_id, label, first_seen, last_seen, top_score, snapshot_key, zones, entered_zones, "
           "stationary, ended_at IS NOT NULL AS ended")


@dataclass(frozen=True)
class EventFilter:
    start: float
    end: float
    limit: int
    camera: str | None = None
    label: str | None = None
    zone: str | None = None
    min_score: float | None = None


def event_sql(f: EventFilter) -> tuple[str, str, dict[str, object]]:
    """(the latest `limit` events newest first, their count, parameters)."""
    where = ["first_seen <= $end", "last_seen >= $start"]
    params: dict[str, object] = {"start": f.start, "end": f.end}
    for column, value in (("camera", f.camera), ("label", f.label)):
        if value is not None:
            where.append(f"{column} = ${column}")
            params[column] = value
    if f.zone is not None:
        where.append("list_contains(entered_zones, $zone)")
        params["zone"] = f.zone
    if f.min_score is not None:
        where.append("top_score >= $min_score")
        params["min_score"] = f.min_score
    matching = " AND ".join(where)
    rows = (f"SELECT {COLUMNS} FROM events WHERE {matching} "  # noqa: S608 (fixed columns, bound values)
            "ORDER BY first_seen DESC, camera, object_id LIMIT $limit")
    count = f"SELECT count(*) FROM events WHERE {matching}"  # noqa: S608
    return rows, count, params


def find_events(cur: duckdb.DuckDBPyConnection, f: EventFilter) -> tuple[list[tuple], int]:
    """The latest `limit` events (newest first) and how many match in all."""
    rows, count, params = event_sql(f)
    found = cur.execute(rows, {**params, "limit": f.limit}).fetchall()
    total = cur.execute(count, params).fetchall()[0][0]
    return found, int(total)
