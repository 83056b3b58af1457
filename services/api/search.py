"""`/search`: tracked objects (events) and incidents across cameras from the indexer. Tagged `footage` in the
OpenAPI document (what it finds is footage); a module of its own because it is not about one camera. Each event
and incident names its snapshot as an API path too (`snapshot`), which a browser loads with its session cookie
even when S3 is out of its reach.

`kind`: `events` (one per tracked object), `incidents` (detections of one label on one camera merged while close
in time), or `auto` (the default): events, and incidents where the index has no events (cameras whose detector
runs no tracker, each camera's history before its first event), so a search never loses what was recorded before
tracking began. Events come in `events[]` beside `incidents[]`, with the incident fields that apply (camera,
label, start, end, max_score, snapshot_key, snapshot_url, snapshot, chunks) and object_id, zones,
entered_zones, stationary, ended, more_chunks; an event has no `detections` count."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from spectare.schemas import label_token
from spectare.schemas.queries import EventRef, Incident

from .auth import Read
from .errors import ApiError
from .links import snapshot_path
from .models import LABEL_PATTERN, NAME_PATTERN
from .params import TimeParam, span
from .state import State

router = APIRouter(tags=["footage"])


class IncidentView(Incident):
    snapshot: str | None = Field(description="API path (from the API's root) of the snapshot, served through the "
                                             "API with the token or session cookie; null when there is none")


class EventView(EventRef):
    snapshot: str | None = Field(description="API path (from the API's root) of the best snapshot; null when none")


class SearchAnswer(BaseModel):
    kind: Literal["auto", "events", "incidents"]
    events: list[EventView] = Field(description="tracked objects, in order of first_seen; the latest when truncated")
    events_total: int = Field(description="events found, before the limit")
    incidents: list[IncidentView] = Field(description="in time order; the latest ones when truncated")
    total: int = Field(description="incidents found, before the limit")
    merge_gap_s: float = Field(description="detections closer than this were merged into one incident")


def with_snapshot_paths(answer: dict[str, Any], root: str) -> dict[str, Any]:
    """A search answer (as JSON) with each event's and incident's `snapshot` API path added."""
    for found in (*answer.get("events", ()), *answer["incidents"]):
        found["snapshot"] = snapshot_path(root, found["camera"], found.get("snapshot_key"))
    return answer


@router.get("/search", response_model=SearchAnswer)
async def search(_token: Read, state: State, request: Request,
                 camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                 label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
                 zone: Annotated[str | None, Query(pattern=LABEL_PATTERN,
                                                   description="only objects that entered this zone")] = None,
                 start: TimeParam = None, end: TimeParam = None,
                 min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
                 kind: Annotated[Literal["auto", "events", "incidents"], Query()] = "auto",
                 limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
    """Tracked objects and incidents from start to end (default: the last 24 hours), each with its chunks' and
    snapshot's presigned URLs and its snapshot's API path."""
    t0, t1 = span(start, end, 86_400)
    label = label_token(label) if label else None
    zone = label_token(zone) if zone else None
    index = state.index()
    if kind == "incidents":
        if zone is not None:
            raise ApiError(400, "zone filters events: incidents have no zones (use kind=events or auto)")
        found = await index.search(t0, t1, camera=camera, label=label, min_score=min_score, limit=limit)
        answer = {"kind": kind, "events": [], "events_total": 0, **found.model_dump(mode="json")}
    else:
        events = await index.events(t0, t1, camera=camera, label=label, zone=zone, min_score=min_score, limit=limit,
                                    incidents=kind == "auto")
        dumped = events.model_dump(mode="json")
        answer = {"kind": kind, "events": dumped["events"], "events_total": dumped["total"],
                  "incidents": dumped["incidents"], "total": dumped["incidents_total"],
                  "merge_gap_s": dumped["merge_gap_s"]}
    return JSONResponse(with_snapshot_paths(answer, request.scope.get("root_path", "")))
