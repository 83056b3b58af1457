"""Routes tagged `system`: health, the caller's token, Prometheus metrics, /stats; and the scaling gauges
(`refresh_scaling`, also run by the service every 15 s for the metrics port)."""

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Response
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from spectare.core.camerastatus import CameraStatusBoard, current_status
from spectare.core.leases import LeaseTable
from spectare.core.redact import redact
from spectare.schemas import CameraStatus

from . import probes
from .auth import Read
from .middleware import ApiMetrics
from .models import Stats, TokenInfo
from .rules import camera_state, rate, workers_needed
from .state import ApiState, Metrics, State

router = APIRouter(tags=["system"])


@router.get("/healthz", responses={200: {"content": {"application/json": {}}}})
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no token needed; touches nothing else)."""
    return {"status": "ok"}


@router.get("/tokens/me", response_model=TokenInfo)
async def whoami(token: Read) -> dict[str, str]:
    """The token this request was made with: id, name and scope."""
    return {"id": token.id, "name": token.name, "scope": token.scope}


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def prometheus(_token: Read, state: State, metrics: Metrics) -> Response:
    """Prometheus metrics: requests by route and status, latency, and the ingest scaling signal."""
    await refresh_scaling(state, metrics)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/stats", response_model=Stats)
async def stats(_token: Read, state: State, metrics: Metrics) -> dict[str, Any]:
    """System health, camera states with packet rates, consumer lag, chunks, storage and the scaling signal."""
    result = await _stats(state)
    counts = result["cameras"]
    for key in ("recording", "camera_away", "orphaned"):
        metrics.camera_states.labels(key).set(counts[key])
    _scaling_gauges(metrics, state, counts["total"])
    metrics.workers_live.set(result["scaling"]["ingest_workers_live"])
    return result


async def refresh_scaling(state: ApiState, metrics: ApiMetrics) -> None:
    """Set the scaling gauges from the registry's size and the ingest workers announcing themselves."""
    cameras = await probes.bounded(_count_keys(state.registry.kv), state.api.stats_timeout_s, "camera count")
    if cameras is not None:
        _scaling_gauges(metrics, state, cameras)
    live = await probes.bounded(LeaseTable(state.leases, "ingest", "api").live_workers(), state.api.stats_timeout_s,
                                "ingest workers")
    if live is not None:
        metrics.workers_live.set(live)


async def _count_keys(kv: KeyValue) -> int:
    try:
        return len(await kv.keys())
    except NoKeysError:
        return 0


def _scaling_gauges(metrics: ApiMetrics, state: ApiState, cameras: int) -> None:
    metrics.cameras.set(cameras)
    metrics.workers_needed.set(workers_needed(cameras, state.per_worker))


async def _stats(state: ApiState) -> dict[str, Any]:
    api, settings, names = state.api, state.settings, state.settings.names
    timeout = api.stats_timeout_s
    now = time.time()
    hour_ago = now - 3600
    index = state.index(timeout)

    def bounded(work: Any, what: str) -> Any:
        return probes.bounded(work, timeout, what)

    (nats_ok, nats_detail), (s3_ok, s3_detail), index_status, cameras, ingest, segmenter, last, recent, lags, said = (
        await asyncio.gather(
            probes.nats_check(state.nc, state.js, settings, timeout),
            asyncio.to_thread(probes.s3_check, settings, timeout),
            bounded(index.status(), "indexer"),
            bounded(state.registry.list(), "camera registry"),
            bounded(LeaseTable(state.leases, "ingest", "api").snapshot(), "ingest leases"),
            bounded(LeaseTable(state.leases, "segmenter", "api").snapshot(), "segmenter leases"),
            bounded(probes.last_packets(state.js, names), "last packets"),
            bounded(probes.recent_packets(state.js, names, api.rate_window_s), "packet rates"),
            bounded(probes.consumer_lags(state.js, names), "consumer lag"),
            bounded(_camera_statuses(state), "camera status"),
        )
    )
    storage: dict[str, Any] = {"source": "unavailable", "footage_bytes": None, "footage_chunks": None,
                               "snapshots": None}
    recent_chunks: dict[str, int] | None = None
    if index_status is not None:
        found = await bounded(probes.chunks_from_index(index, hour_ago), "chunks from the indexer")
        if found is not None:
            recent_chunks, totals = found
            storage = {"source": "indexer", **totals}
    if recent_chunks is None:
        recent_chunks = await bounded(probes.chunks_from_stream(state.js, settings, hour_ago), "chunks from FOOTAGE")
    ingest_owners, ingest_live = ingest if ingest is not None else ({}, 0)
    segmenter_owners = segmenter[0] if segmenter is not None else {}
    per_camera = []
    for camera in cameras or []:
        last_at = (last or {}).get(camera.name)
        age = max(now - last_at, 0.0) if last_at is not None else None
        measured = rate((recent or {}).get(camera.name, []))
        owner = ingest_owners.get(camera.name)
        status = current_status((said or {}).get(camera.name), owner)
        per_camera.append({
            "name": camera.name,
            "state": camera_state(owner is not None, age, api.stale_after_s),
            "ingest": None if status is None else _ingest_view(status),
            "ingest_worker": owner,
            "segmenter_worker": segmenter_owners.get(camera.name),
            "last_packet_age_s": None if age is None else round(age, 3),
            "fps": None if measured.fps is None else round(measured.fps, 2),
            "bitrate_bps": None if measured.bitrate_bps is None else round(measured.bitrate_bps),
            "chunks_last_hour": None if recent_chunks is None else recent_chunks.get(camera.name, 0),
        })
    states = [c["state"] for c in per_camera]
    total = len(per_camera)
    index_detail = "indexer answers" if index_status is not None else "no indexer answers"
    if index_status is not None:
        index_detail = f"indexer answers: {', '.join(f'{k} {v}' for k, v in sorted(index_status.tables.items()))}"
    return {
        "time": now,
        "health": {"nats": {"ok": nats_ok, "detail": nats_detail}, "s3": {"ok": s3_ok, "detail": s3_detail},
                   "indexer": {"ok": index_status is not None, "detail": index_detail}},
        "cameras": {"total": total, **{key: states.count(key) for key in ("recording", "camera_away", "orphaned")}},
        "per_camera": per_camera,
        "consumers": lags or [],
        "storage": storage,
        "scaling": {"cameras": total, "max_cameras_per_worker": state.per_worker,
                    "ingest_workers_needed": workers_needed(total, state.per_worker),
                    "ingest_workers_live": ingest_live},
    }


async def _camera_statuses(state: ApiState) -> dict[str, CameraStatus]:
    return await (await CameraStatusBoard.open(state.js, state.settings)).all()


def _ingest_view(status: CameraStatus) -> dict[str, Any]:
    view = status.model_dump(include={"worker", "state", "error_kind", "error", "since", "attempts", "updated_at"})
    view["error"] = None if status.error is None else redact(status.error)  # ingest masks it; so does every answer
    return view
