"""The read side: search, footage at a moment, chunks of a range, status. Each function takes its own DuckDB
cursor (the query service gives every request a fresh one, so it can be interrupted alone) and returns a
response message of `spectare.schemas.queries`. URLs are presigned GETs, computed locally (no S3 request).
"""

from datetime import timedelta

import duckdb
import pyarrow as pa
from minio import Minio

from spectare.core.config import Settings
from spectare.core.errors import CameraNotFound
from spectare.core.store import s3_client
from spectare.schemas.queries import (
    ChunkRef,
    ChunksRequest,
    ChunksResponse,
    FootageAtRequest,
    FootageAtResponse,
    GapRef,
    Incident,
    SearchRequest,
    SearchResponse,
    StatusResponse,
    StreamProgress,
)

from .incidents import COVERING_CHUNKS, IncidentFilter, incident_sql
from .settings import IndexerSettings
from .tables import STREAM_TABLES


class Presigner:
    """Presigned GET URLs for users, signed for the endpoint they reach (`presign_endpoint`)."""

    def __init__(self, settings: Settings, ix: IndexerSettings) -> None:
        s3 = settings.s3
        if ix.presign_endpoint:
            s3 = s3.model_copy(update={"endpoint": ix.presign_endpoint.removeprefix("https://").removeprefix(
                "http://").rstrip("/")})
        self.client: Minio = s3_client(s3)
        self.bucket = settings.s3.bucket
        self.expiry = timedelta(seconds=ix.presign_expiry_s)

    def url(self, key: str, bucket: str | None = None) -> str:
        return self.client.presigned_get_object(bucket or self.bucket, key, expires=self.expiry)


class Reader:
    def __init__(self, settings: Settings, ix: IndexerSettings, presigner: Presigner) -> None:
        self.settings = settings
        self.ix = ix
        self.presigner = presigner

    # -- search ---------------------------------------------------------------------------------------

    def search(self, cur: duckdb.DuckDBPyConnection, req: SearchRequest) -> SearchResponse:
        if req.camera is not None:
            self.require_camera(cur, req.camera)
        limit = min(req.limit or self.ix.max_incidents, self.ix.max_incidents)
        sql, params = incident_sql(IncidentFilter(req.start, req.end, self.ix.merge_gap_s, limit, req.camera,
                                                  req.label, req.min_score))
        found = cur.execute(sql, params).fetchall()
        found.sort(key=lambda row: (row[2], row[0], row[1]))  # the latest `limit` ones, in order of their start
        total = found[0][7] if found else 0
        chunks = self._covering(cur, [(camera, start, end) for camera, _, start, end, *_ in found])
        incidents = tuple(
            Incident(camera=camera, label=label, start=start, end=end, detections=count, max_score=score,
                     snapshot_key=snapshot, snapshot_url=self.presigner.url(snapshot) if snapshot else None,
                     chunks=tuple(chunks.get(row, ())))
            for row, (camera, label, start, end, count, score, snapshot, _) in enumerate(found)
        )
        return SearchResponse(incidents=incidents, total=total, merge_gap_s=self.ix.merge_gap_s)

    def _covering(self, cur: duckdb.DuckDBPyConnection,
                  ranges: list[tuple[str, float, float]]) -> dict[int, list[ChunkRef]]:
        if not ranges:
            return {}
        wanted = pa.table({"row": list(range(len(ranges))), "camera": [r[0] for r in ranges],
                           "start": [r[1] for r in ranges], "end": [r[2] for r in ranges]})
        cur.register("wanted", wanted)
        try:
            rows = cur.execute(COVERING_CHUNKS, {"lo": min(r[1] for r in ranges),
                                                 "hi": max(r[2] for r in ranges)}).fetchall()
        finally:
            cur.unregister("wanted")
        covering: dict[int, list[ChunkRef]] = {}
        for row, key, bucket, start, end, size in rows:
            covering.setdefault(row, []).append(self._chunk(ranges[row][0], key, bucket, start, end, size))
        return covering

    # -- footage ---------------------------------------------------------------------------------------

    def footage_at(self, cur: duckdb.DuckDBPyConnection, req: FootageAtRequest) -> FootageAtResponse:
        self.require_camera(cur, req.camera)
        params = {"camera": req.camera, "t": req.time}
        chunk = cur.execute(
            "SELECT key, bucket, start_time, end_time, bytes FROM chunks WHERE camera = $camera "
            "AND start_time <= $t AND $t < end_time ORDER BY start_time DESC, key LIMIT 1", params).fetchone()
        answer = {"camera": req.camera, "time": req.time}
        if chunk is not None:
            key, bucket, start, end, size = chunk
            return FootageAtResponse(**answer, found="chunk", chunk=self._chunk(req.camera, key, bucket, start, end,
                                                                                size), offset=req.time - start)
        gap = cur.execute(
            "SELECT start_time, end_time, reason FROM gaps WHERE camera = $camera AND start_time <= $t "
            "AND (end_time IS NULL OR $t < end_time) ORDER BY start_time DESC LIMIT 1", params).fetchone()
        if gap is not None:
            return FootageAtResponse(**answer, found="gap", gap=GapRef(camera=req.camera, start=gap[0], end=gap[1],
                                                                       reason=gap[2]))
        before, after = cur.execute(
            "SELECT (SELECT max(end_time) FROM chunks WHERE camera = $camera AND end_time <= $t), "
            "(SELECT min(start_time) FROM chunks WHERE camera = $camera AND start_time > $t)", params).fetchone()
        return FootageAtResponse(**answer, found="nothing", previous_end=before, next_start=after)

    def chunks(self, cur: duckdb.DuckDBPyConnection, req: ChunksRequest) -> ChunksResponse:
        self.require_camera(cur, req.camera)
        limit = min(req.limit or self.ix.max_chunks, self.ix.max_chunks)
        params = {"camera": req.camera, "start": req.start, "end": req.end}
        rows = cur.execute(
            "SELECT key, bucket, start_time, end_time, bytes FROM chunks WHERE camera = $camera "
            "AND start_time <= $end AND end_time > $start ORDER BY start_time, key LIMIT $limit",
            {**params, "limit": limit + 1}).fetchall()
        gaps = cur.execute(
            "SELECT start_time, end_time, reason FROM gaps WHERE camera = $camera AND start_time <= $end "
            "AND (end_time IS NULL OR end_time > $start) ORDER BY start_time", params).fetchall()
        return ChunksResponse(
            chunks=tuple(self._chunk(req.camera, *row) for row in rows[:limit]),
            gaps=tuple(GapRef(camera=req.camera, start=s, end=e, reason=r) for s, e, r in gaps),
            truncated=len(rows) > limit,
        )

    # -- status ----------------------------------------------------------------------------------------

    def status(self, cur: duckdb.DuckDBPyConnection, database: str) -> StatusResponse:
        tables = {name: cur.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # noqa: S608 (fixed names)
                  for name in ("cameras", *STREAM_TABLES)}
        streams = tuple(StreamProgress(stream=s, last_seq=q, messages=m, garbage=g) for s, q, m, g in cur.execute(
            "SELECT stream, last_seq, messages, garbage FROM progress ORDER BY stream").fetchall())
        latest_chunk, latest_detection = cur.execute(
            "SELECT (SELECT max(end_time) FROM chunks), (SELECT max(time) FROM detections)").fetchone()
        return StatusResponse(database=database, tables=tables, streams=streams, latest_chunk_end=latest_chunk,
                              latest_detection=latest_detection)

    # -- helpers ---------------------------------------------------------------------------------------

    def require_camera(self, cur: duckdb.DuckDBPyConnection, camera: str) -> None:
        """CameraNotFound unless the camera is registered, was registered, or has anything indexed."""
        known = cur.execute(
            "SELECT EXISTS (SELECT 1 FROM cameras WHERE name = $c) OR EXISTS (SELECT 1 FROM chunks WHERE camera = $c)"
            " OR EXISTS (SELECT 1 FROM detections WHERE camera = $c)", {"c": camera}).fetchone()[0]
        if not known:
            raise CameraNotFound(f"no camera named {camera!r} in the index; `spectare camera list` shows the "
                                 "registered ones")

    def _chunk(self, camera: str, key: str, bucket: str, start: float, end: float, size: int) -> ChunkRef:
        return ChunkRef(camera=camera, key=key, start=start, end=end, bytes=size, url=self.presigner.url(key, bucket))
