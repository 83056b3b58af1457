"""`/search`: incidents across cameras from the indexer. Tagged `footage` in the OpenAPI document (what it
finds is footage); a module of its own because it is not about one camera."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from spectare.schemas import label_token
from spectare.schemas.queries import SearchResponse

from .auth import Read
from .models import LABEL_PATTERN, NAME_PATTERN
from .params import TimeParam, span
from .state import State

router = APIRouter(tags=["footage"])


@router.get("/search", response_model=SearchResponse)
async def search(_token: Read, state: State,
                 camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                 label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
                 start: TimeParam = None, end: TimeParam = None,
                 min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
                 limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
    """Incidents (detections of one label on one camera close in time) from start to end (default: the last
    24 hours), each with its chunks' and snapshot's presigned URLs."""
    t0, t1 = span(start, end, 86_400)
    answer = await state.index().search(t0, t1, camera=camera, label=label_token(label) if label else None,
                                        min_score=min_score, limit=limit)
    return JSONResponse(answer.model_dump(mode="json"))
