"""Routes tagged `cameras`: the camera registry (URL passwords are stored, never returned). Reads need a `read`
token, changes an `admin` one; edits are read-then-put like `spectare camera set`."""

from typing import Any

from fastapi import APIRouter, Response

from spectare.core.errors import NotFoundError
from spectare.schemas import CameraConfig

from .auth import Admin, Read
from .errors import ApiError
from .models import NULLABLE, CameraBody, CameraCreate, CameraPatch, CameraView, Problem, camera_view
from .params import CamName
from .rules import edited, null_fields
from .state import ApiState, State

router = APIRouter(tags=["cameras"])


@router.get("/cameras", response_model=list[CameraView])
async def list_cameras(_token: Read, state: State) -> list[dict[str, Any]]:
    """Every registered camera, by name."""
    return [camera_view(c) for c in await state.registry.list()]


@router.post("/cameras", status_code=201, response_model=CameraView,
             responses={409: {"model": Problem, "description": "a camera with that name exists"}})
async def add_camera(body: CameraCreate, _token: Admin, state: State) -> dict[str, Any]:
    """Register a camera; within seconds an ingest worker starts recording it."""
    fields = body.model_dump()
    name = fields.pop("name")
    config = CameraConfig.create(**edited(None, name, fields, replace=True))
    return camera_view(await state.registry.add(config))


@router.get("/cameras/byname/{name}", response_model=CameraView, responses={404: {"model": Problem}})
async def get_camera(name: CamName, _token: Read, state: State) -> dict[str, Any]:
    """One camera's settings."""
    return camera_view(await state.registry.get(name))


@router.put("/cameras/byname/{name}", response_model=CameraView,
            responses={201: {"model": CameraView, "description": "created"}})
async def put_camera(name: CamName, body: CameraBody, _token: Admin, state: State,
                     response: Response) -> dict[str, Any]:
    """Create or replace a camera: fields left out take their defaults."""
    current = await _current(state, name)
    config = CameraConfig.create(**edited(current, name, body.model_dump(), replace=True))
    stored = await state.registry.put(config)
    response.status_code = 201 if current is None else 200
    return camera_view(stored)


@router.patch("/cameras/byname/{name}", response_model=CameraView, responses={404: {"model": Problem}})
async def patch_camera(name: CamName, body: CameraPatch, _token: Admin, state: State) -> dict[str, Any]:
    """Change some of a camera's settings; detection and retention changes apply without interrupting the
    recording."""
    fields = {k: getattr(body, k) for k in body.model_fields_set}
    refused = null_fields(fields, NULLABLE)
    if refused:
        raise ApiError(422, f"{', '.join(refused)}: cannot be null (only {', '.join(sorted(NULLABLE))} can)")
    current = await state.registry.get(name)
    if not fields:
        return camera_view(current)
    config = CameraConfig.create(**edited(current, name, fields, replace=False))
    return camera_view(await state.registry.put(config))


@router.delete("/cameras/byname/{name}", status_code=204, response_class=Response,
               responses={404: {"model": Problem}})
async def delete_camera(name: CamName, _token: Admin, state: State) -> Response:
    """Remove a camera from the registry (its recorded footage stays)."""
    await state.registry.remove(name)
    return Response(status_code=204)


async def _current(state: ApiState, name: str) -> CameraConfig | None:
    try:
        return await state.registry.get(name)
    except NotFoundError:
        return None
