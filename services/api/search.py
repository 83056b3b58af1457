"""`/search`: incidents across cameras from the indexer. Tagged `footage` in the OpenAPI document (what it
finds is footage); a module of its own because it is not about one camera. Each incident names its snapshot as
an API path too (`snapshot`), which a browser loads with its session cookie even when S3 is out of its reach."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from spectare.schemas import label_token
from spectare.schemas.queries import Incident

from .auth import Read
from .links import snapshot_path
from .models import LABEL_PATTERN, NAME_PATTERN
from .params import TimeParam, span
from .state import State

router = APIRouter(tags=["footage"])


class IncidentView(Incident):
    snapshot: str | None = Field(description="API path (from the API's root) of the snapshot, served through the "
                                             "API with the token or session cookie; null when there is none")


class SearchAnswer(BaseModel):
    incidents: list[IncidentView] = Field(description="in time order; the latest ones when truncated")
    total: int = Field(description="incidents found, before the limit")
    merge_gap_s: float = Field(description="detections closer than this were merged into one incident")


def with_snapshot_paths(answer: dict[str, Any], root: str) -> dict[str, Any]:
    """A search answer (as JSON) with each incident's `snapshot` API path added."""
    for incident in answer["incidents"]:
        incident["snapshot"] = snapshot_path(root, incident["camera"], incident.get("snapshot_key"))
    return answer


@router.get("/search", response_model=SearchAnswer)
async def search(_token: Read, state: State, request: Request,
                 camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                 label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
                 start: TimeParam = None, end: TimeParam = None,
                 min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
                 limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
    """Incidents (detections of one label on one camera close in time) from start to end (default: the last
    24 hours), each with its chunks' and snapshot's presigned URLs and its snapshot's API path."""
    t0, t1 = span(start, end, 86_400)
    answer = await state.index().search(t0, t1, camera=camera, label=label_token(label) if label else None,
                                        min_score=min_score, limit=limit)
    return JSONResponse(with_snapshot_paths(answer.model_dump(mode="json"), request.scope.get("root_path", "")))
