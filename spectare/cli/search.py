"""`spectare search` and `spectare sql`: questions to the indexer (it must be running: `spectare up`)."""

import time

import click

from spectare.core.timeparse import iso, parse_time
from spectare.schemas import camera_name, label_token
from spectare.schemas.queries import EventRef, Incident

from .common import print_json, print_table, with_index


@click.command()
@click.option("--camera", help="Only this camera.")
@click.option("--label", help="Only this label, e.g. person, car, truck.")
@click.option("--zone", help="Only tracked objects that entered this zone (events only).")
@click.option("--since", "since_text", help="From this long ago to now: 90s, 15m, 2h, 3d (default 24h).")
@click.option("--start", "start_text", help="From this moment (with --end): e.g. 'yesterday 14:00', "
              "2026-11-27T14:00, 2h (ago).")
@click.option("--end", "end_text", help="Until this moment (default now).")
@click.option("--min-score", type=click.FloatRange(0, 1),
              help="Only objects or detections at least this sure, e.g. 0.6.")
@click.option("--kind", type=click.Choice(["auto", "events", "incidents"]), default="auto", show_default=True,
              help="events: tracked objects; incidents: merged detections; auto: events, and incidents where there "
              "are none (cameras without a tracker, history before it).")
@click.option("--limit", type=click.IntRange(1), help="Show at most this many events and incidents (the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with presigned download URLs.")
def search(camera: str | None, label: str | None, zone: str | None, since_text: str | None, start_text: str | None,
           end_text: str | None, min_score: float | None, kind: str, limit: int | None, as_json: bool) -> None:
    """Find what happened: tracked objects (events: one per object, with its time range and best snapshot) and
    incidents (detections of one label on one camera, merged while each follows the last within the indexer's
    merge gap, 30 s by default), with the chunks that show them.

    \b
    Times: now, 2h (ago), today 08:30, yesterday 14:00, 2026-11-27T14:00 (local time), ...Z (UTC).
    """
    camera = camera_name(camera) if camera else None
    label = label_token(label) if label else None
    zone = label_token(zone) if zone else None
    if zone and kind == "incidents":
        raise click.UsageError("--zone needs events: incidents have no zones")
    start, end = time_range(since_text, start_text, end_text)
    events: tuple[EventRef, ...]
    incidents: tuple[Incident, ...]
    if kind == "incidents":
        found = with_index(lambda index: index.search(start, end, camera=camera, label=label, min_score=min_score,
                                                      limit=limit))
        events, events_total, incidents, total = (), 0, found.incidents, found.total
        merge_gap_s = found.merge_gap_s
    else:
        answer = with_index(lambda index: index.events(start, end, camera=camera, label=label, zone=zone,
                                                       min_score=min_score, limit=limit, incidents=kind == "auto"))
        events, events_total, incidents, total = answer.events, answer.total, answer.incidents, answer.incidents_total
        merge_gap_s = answer.merge_gap_s
    if as_json:
        print_json({"start": iso(start), "end": iso(end), "kind": kind, "events_total": events_total,
                    "events": [_view(e) for e in events], "total": total, "merge_gap_s": merge_gap_s,
                    "incidents": [_view(i) for i in incidents]})
        return
    if not events and not incidents:
        click.echo(f"no {'events or incidents' if kind == 'auto' else kind} between {iso(start)} and {iso(end)}")
        return
    if events:
        rows = [[e.camera, e.label, e.object_id, iso(e.start), iso(e.end), f"{e.max_score:.2f}",
                 ",".join(e.entered_zones) or "-", _state(e), e.snapshot_key or "-", _chunks_cell(e.chunks)]
                for e in events]
        print_table(["CAMERA", "LABEL", "OBJECT", "FROM", "TO", "BEST", "ZONES", "STATE", "SNAPSHOT", "CHUNKS"], rows)
        if events_total > len(events):
            click.echo(f"({events_total - len(events)} earlier events not shown: narrow the range or raise --limit)",
                       err=True)
    if incidents:
        if events:
            click.echo("incidents (merged detections) where there are no events:")
        rows = [[i.camera, i.label, iso(i.start), iso(i.end), str(i.detections), f"{i.max_score:.2f}",
                 i.snapshot_key or "-", _chunks_cell(i.chunks)] for i in incidents]
        print_table(["CAMERA", "LABEL", "FROM", "TO", "DETECTIONS", "BEST", "SNAPSHOT", "CHUNKS"], rows)
        if total > len(incidents):
            click.echo(f"({total - len(incidents)} earlier incidents not shown: narrow the range or raise --limit)",
                       err=True)
    click.echo("download: spectare footage get KEY -o clip.mp4 (or the presigned URLs of --json)", err=True)


@click.command()
@click.argument("query")
@click.option("--max-rows", type=click.IntRange(1), help="Return at most this many rows (the indexer caps it too).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: columns, types, rows.")
def sql(query: str, max_rows: int | None, as_json: bool) -> None:
    """Run one read-only SQL query on the index (DuckDB): tables cameras, chunks, gaps, detections.

    \b
    Times are Unix seconds (DOUBLE): to_timestamp(time) shows them as timestamps.
    spectare sql "SELECT label, count(*) FROM detections GROUP BY label"
    spectare sql "DESCRIBE detections"
    """
    answer = with_index(lambda index: index.sql(query, max_rows=max_rows))
    if as_json:
        print_json({"columns": list(answer.columns), "types": list(answer.types),
                    "rows": [list(r) for r in answer.rows], "truncated": answer.truncated,
                    "elapsed_s": answer.elapsed_s})
        return
    print_table(list(answer.columns), [["NULL" if v is None else str(v) for v in row] for row in answer.rows])
    note = f"{len(answer.rows)} row(s) in {answer.elapsed_s * 1e3:.1f} ms"
    click.echo(note + (" (truncated: more rows exist; add a LIMIT or --max-rows)" if answer.truncated else ""),
               err=True)


def time_range(since_text: str | None, start_text: str | None, end_text: str | None) -> tuple[float, float]:
    """(start, end) from --since or --start/--end, as Unix seconds; one clear error otherwise."""
    now = time.time()
    if since_text and start_text:
        raise click.UsageError("give --since or --start, not both")
    end = parse_time(end_text, now) if end_text else now
    if start_text:
        start = parse_time(start_text, now)
    else:
        start = parse_time(since_text or "24h", now)
    if end < start:
        raise click.UsageError(f"the range ends ({iso(end)}) before it starts ({iso(start)})")
    return start, end


def _chunks_cell(chunks) -> str:
    if not chunks:
        return "-"
    return chunks[0].key if len(chunks) == 1 else f"{chunks[0].key} +{len(chunks) - 1}"


def _state(e: EventRef) -> str:
    return "ended" if e.ended else "stationary" if e.stationary else "moving"


def _view(i: Incident | EventRef) -> dict:
    view = i.model_dump(mode="json")
    view["start_iso"], view["end_iso"] = iso(i.start), iso(i.end)
    for chunk in view["chunks"]:
        chunk["start_iso"], chunk["end_iso"] = iso(chunk["start"]), iso(chunk["end"])
    return view
