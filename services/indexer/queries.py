"""The read side: search, footage at a moment, chunks of a range, status. Each function takes its own DuckDB
cursor (the query service gives every request a fresh one, so it can be interrupted alone) and returns a
response message of `spectare.schemas.queries`. URLs are presigned GETs, computed locally (no S3 request).
"""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import duckdb
import pyarrow as pa
from minio import Minio

from spectare.core.config import Settings
from spectare.core.errors import CameraNotFound
from spectare.core.store import endpoint_url, s3_client
from spectare.schemas.queries import (
    ChunkRef,
    ChunksRequest,
    ChunksResponse,
    EventRef,
    EventSearchRequest,
    EventSearchResponse,
    FootageAtRequest,
    FootageAtResponse,
    GapRef,
    Incident,
    SearchRequest,
    SearchResponse,
    StatusResponse,
    StreamProgress,
)

from .events import EventFilter, find_events
from .incidents import (
    BUCKET_S,
    CHUNKS_BY_ROWID,
    COVERING_CHUNK_ROWS,
    SNAPSHOTS_BY_ROWID,
    IncidentFilter,
    find_incidents,
)
from .settings import IndexerSettings
from .tables import STREAM_TABLES, one_row


def longest_chunk(cur: duckdb.DuckDBPyConnection) -> float:
    """The longest chunk indexed, in seconds (kept in `meta` by the writer)."""
    rows = cur.execute("SELECT value FROM meta WHERE key = 'longest_chunk_s'").fetchall()
    return float(rows[0][0]) if rows else 0.0


def snapshot_keys(cur: duckdb.DuckDBPyConnection, rowids: list[int | None]) -> dict[int, str]:
    """Snapshot keys of detections by rowid (within the caller's transaction)."""
    ids = sorted({r for r in rowids if r is not None})
    return dict(cur.execute(SNAPSHOTS_BY_ROWID, {"ids": ids}).fetchall()) if ids else {}


class Presigner:
    """Presigned GET URLs for users, signed for the endpoint they reach (`presign_endpoint`).

    A search answers with hundreds of URLs; the minio SDK derives the signing key anew for each (five HMACs).
    For path-style endpoints (MinIO, SeaweedFS, any S3 addressed by host:port) URLs are signed here, the same
    AWS Signature V4 query signing, with the day's signing key kept; they are byte-identical to minio's (tested).
    AWS endpoints (virtual-host style) go through minio.
    """

    def __init__(self, settings: Settings, ix: IndexerSettings) -> None:
        s3 = settings.s3
        if ix.presign_endpoint:
            s3 = s3.model_copy(update={"endpoint": ix.presign_endpoint.removeprefix("https://").removeprefix(
                "http://").rstrip("/")})
        self.client: Minio = s3_client(s3)
        self.bucket = settings.s3.bucket
        self.expiry = timedelta(seconds=ix.presign_expiry_s)
        self.region = s3.region
        self.access_key = s3.access_key
        self.secret_key = s3.secret_key.get_secret_value()
        self.base = endpoint_url(s3)
        self.host = urlsplit(self.base).netloc
        self.own_signing = "amazonaws.com" not in self.host and bool(self.access_key)
        self._day_key: tuple[str, bytes] = ("", b"")

    def url(self, key: str, bucket: str | None = None, at: datetime | None = None) -> str:
        """A presigned GET URL of `key`, signed as of `at` (default now; give one `at` to a whole answer)."""
        bucket = bucket or self.bucket
        at = at or datetime.now(UTC)
        if not self.own_signing:
            return self.client.presigned_get_object(bucket, key, expires=self.expiry, request_date=at)
        amz_date = at.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        scope = f"{day}/{self.region}/s3/aws4_request"
        path = f"/{bucket}/" + quote(key, safe="/").replace("%7E", "~")
        query = (f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={_query(self.access_key + '/' + scope)}"
                 f"&X-Amz-Date={amz_date}&X-Amz-Expires={int(self.expiry.total_seconds())}&X-Amz-SignedHeaders=host")
        canonical = f"GET\n{path}\n{query}\nhost:{self.host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self.base}{path}?{query}&X-Amz-Signature={signature}"

    def _signing_key(self, day: str) -> bytes:
        if self._day_key[0] != day:
            key = f"AWS4{self.secret_key}".encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day_key = (day, key)
        return self._day_key[1]


def _query(value: str) -> str:
    return quote(value, safe="").replace("%7E", "~")


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
        wanted = IncidentFilter(req.start, req.end, self.ix.merge_gap_s, limit, req.camera, req.label, req.min_score)
        cur.execute("BEGIN TRANSACTION READ ONLY")  # incidents and chunks from one snapshot (rowids too)
        try:
            incidents, total = self._incidents(cur, wanted, datetime.now(UTC))
        finally:
            cur.execute("ROLLBACK")
        return SearchResponse(incidents=incidents, total=total, merge_gap_s=self.ix.merge_gap_s)

    def events(self, cur: duckdb.DuckDBPyConnection, req: EventSearchRequest) -> EventSearchResponse:
        """Tracked objects of the range; with `req.incidents` also the incidents where no events exist."""
        if req.camera is not None:
            self.require_camera(cur, req.camera)
        limit = min(req.limit or self.ix.max_incidents, self.ix.max_incidents)
        wanted = EventFilter(req.start, req.end, limit, req.camera, req.label, req.zone, req.min_score)
        cur.execute("BEGIN TRANSACTION READ ONLY")  # events, incidents and chunks from one snapshot
        try:
            found, total = find_events(cur, wanted)
            found.sort(key=lambda row: (row[3], row[0], row[1]))  # in order of first_seen
            at = datetime.now(UTC)
            chunks = self._covering(cur, [(row[0], row[3], row[4]) for row in found], at)
            incidents: tuple[Incident, ...] = ()
            incidents_total = 0
            if req.incidents and req.zone is None:  # an incident has no zones: none matches a zone
                incidents, incidents_total = self._incidents(cur, IncidentFilter(
                    req.start, req.end, self.ix.merge_gap_s, limit, req.camera, req.label, req.min_score,
                    outside_events=True), at)
        finally:
            cur.execute("ROLLBACK")
        cap = self.ix.max_event_chunks
        events = []
        for row, (camera, object_id, label, start, end, score, snapshot, zones, entered, stationary,
                  ended) in enumerate(found):
            covering = chunks.get(row, [])
            events.append(EventRef(
                camera=camera, object_id=object_id, label=label, start=start, end=end, max_score=score,
                snapshot_key=snapshot, snapshot_url=self.presigner.url(snapshot, at=at) if snapshot else None,
                chunks=tuple(covering[:cap]), more_chunks=len(covering) > cap, zones=tuple(zones),
                entered_zones=tuple(entered), stationary=stationary, ended=ended))
        return EventSearchResponse(events=tuple(events), total=total, incidents=incidents,
                                   incidents_total=incidents_total, merge_gap_s=self.ix.merge_gap_s)

    def _incidents(self, cur: duckdb.DuckDBPyConnection, wanted: IncidentFilter,
                   at: datetime) -> tuple[tuple[Incident, ...], int]:
        """The incidents `wanted` asks for, in order of their start, and how many there are (inside the caller's
        read-only transaction)."""
        found, total = find_incidents(cur, wanted)
        found.sort(key=lambda row: (row[2], row[0], row[1]))  # the latest `limit` ones, in order of their start
        chunks = self._covering(cur, [(camera, start, end) for camera, _, start, end, *_ in found], at)
        snapshots = snapshot_keys(cur, [row[6] for row in found])
        incidents = []
        for row, (camera, label, start, end, count, score, snapshot_row) in enumerate(found):
            snapshot = snapshots.get(snapshot_row)
            incidents.append(Incident(
                camera=camera, label=label, start=start, end=end, detections=count, max_score=score,
                snapshot_key=snapshot, snapshot_url=self.presigner.url(snapshot, at=at) if snapshot else None,
                chunks=tuple(chunks.get(row, ()))))
        return tuple(incidents), total

    def _covering(self, cur: duckdb.DuckDBPyConnection, ranges: list[tuple[str, float, float]],
                  at: datetime) -> dict[int, list[ChunkRef]]:
        """Per row of `ranges` (camera, start, end), the chunks overlapping it in time order."""
        if not ranges:
            return {}
        longest = longest_chunk(cur)
        wanted = pa.table({"row": list(range(len(ranges))), "camera": [r[0] for r in ranges],
                           "start": [r[1] for r in ranges], "end": [r[2] for r in ranges]})
        cur.register("wanted", wanted)
        try:
            matches = cur.execute(COVERING_CHUNK_ROWS, {
                "lo": min(r[1] for r in ranges), "hi": max(r[2] for r in ranges), "longest": longest,
                "bucket": max(BUCKET_S, longest)}).fetchall()
        finally:
            cur.unregister("wanted")
        if not matches:
            return {}
        rows = {rowid: row for rowid, *row in cur.execute(CHUNKS_BY_ROWID, {"ids": sorted({m[1] for m in matches})})
                .fetchall()}
        covering: dict[int, list] = {}
        for row, rowid in matches:
            covering.setdefault(row, []).append(rows[rowid])
        return {row: [self._chunk(ranges[row][0], key, bucket, start, end, size, at)
                      for key, bucket, start, end, size in sorted(found, key=lambda c: (c[2], c[0]))]
                for row, found in covering.items()}

    # -- footage ---------------------------------------------------------------------------------------

    def footage_at(self, cur: duckdb.DuckDBPyConnection, req: FootageAtRequest) -> FootageAtResponse:
        self.require_camera(cur, req.camera)
        params = {"camera": req.camera, "t": req.time}
        chunk = cur.execute(
            "SELECT key, bucket, start_time, end_time, bytes FROM chunks WHERE camera = $camera "
            "AND start_time <= $t AND $t < end_time ORDER BY start_time DESC, key LIMIT 1", params).fetchone()
        if chunk is not None:
            key, bucket, start, end, size = chunk
            return FootageAtResponse(camera=req.camera, time=req.time, found="chunk",
                                     chunk=self._chunk(req.camera, key, bucket, start, end, size),
                                     offset=req.time - start)
        gap = cur.execute(
            "SELECT start_time, end_time, reason FROM gaps WHERE camera = $camera AND start_time <= $t "
            "AND (end_time IS NULL OR $t < end_time) ORDER BY start_time DESC LIMIT 1", params).fetchone()
        if gap is not None:
            return FootageAtResponse(camera=req.camera, time=req.time, found="gap",
                                     gap=GapRef(camera=req.camera, start=gap[0], end=gap[1], reason=gap[2]))
        before, after = one_row(cur.execute(
            "SELECT (SELECT max(end_time) FROM chunks WHERE camera = $camera AND end_time <= $t), "
            "(SELECT min(start_time) FROM chunks WHERE camera = $camera AND start_time > $t)", params))
        return FootageAtResponse(camera=req.camera, time=req.time, found="nothing", previous_end=before,
                                 next_start=after)

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
        tables = {name: one_row(cur.execute(f"SELECT count(*) FROM {name}"))[0]  # noqa: S608 (fixed names)
                  for name in ("cameras", *STREAM_TABLES)}
        streams = tuple(StreamProgress(stream=s, last_seq=q, messages=m, garbage=g) for s, q, m, g in cur.execute(
            "SELECT stream, last_seq, messages, garbage FROM progress ORDER BY stream").fetchall())
        latest_chunk, latest_detection = one_row(cur.execute(
            "SELECT (SELECT max(end_time) FROM chunks), (SELECT max(time) FROM detections)"))
        return StatusResponse(database=database, tables=tables, streams=streams, latest_chunk_end=latest_chunk,
                              latest_detection=latest_detection)

    # -- helpers ---------------------------------------------------------------------------------------

    def require_camera(self, cur: duckdb.DuckDBPyConnection, camera: str) -> None:
        """CameraNotFound unless the camera is registered, was registered, or has anything indexed."""
        known = one_row(cur.execute(
            "SELECT EXISTS (SELECT 1 FROM cameras WHERE name = $c) OR EXISTS (SELECT 1 FROM chunks WHERE camera = $c)"
            " OR EXISTS (SELECT 1 FROM detections WHERE camera = $c)"
            " OR EXISTS (SELECT 1 FROM events WHERE camera = $c)", {"c": camera}))[0]
        if not known:
            raise CameraNotFound(f"no camera named {camera!r} in the index; `spectare camera list` shows the "
                                 "registered ones")

    def _chunk(self, camera: str, key: str, bucket: str, start: float, end: float, size: int,
               at: datetime | None = None) -> ChunkRef:
        return ChunkRef(camera=camera, key=key, start=start, end=end, bytes=size,
                        url=self.presigner.url(key, bucket, at))
