"""S3 objects passed through the API as they are read (detection snapshots, exported clips): the browser needs
no presigned URL, no CORS on the bucket and no route to S3, which may stay on a private network; the session
cookie or the bearer token is all it sends. Only keys a route has checked reach here."""

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse
from minio import Minio

from spectare.core.store import s3_client, s3_errors

from .state import ApiState

READ_BYTES = 256 * 1024  # one read from S3, one piece of the answer


def _client(request: Request, state: ApiState) -> Minio:
    """One minio client per app (its connection pool is reused from request to request)."""
    client: Minio | None = getattr(request.app.state, "objects_s3", None)
    if client is None:
        client = request.app.state.objects_s3 = s3_client(state.settings.s3)
    return client


async def stream_object(request: Request, state: ApiState, key: str, media_type: str,
                        headers: dict[str, str]) -> StreamingResponse:
    """The object `key` of the footage bucket, streamed; NotFoundError (404) when there is none, UnreachableError
    (503) when S3 does not answer. Opened before answering, so both come as a status, not as a cut answer."""
    settings = state.settings.s3
    with s3_errors(settings, f"reading {key}"):
        response = await asyncio.to_thread(_client(request, state).get_object, settings.bucket, key)
    size = response.headers.get("Content-Length")

    async def pieces() -> AsyncIterator[bytes]:
        try:
            while True:
                with s3_errors(settings, f"reading {key}"):
                    piece = await asyncio.to_thread(response.read, READ_BYTES)
                if not piece:
                    return
                yield piece
        finally:
            response.close()
            response.release_conn()

    return StreamingResponse(pieces(), media_type=media_type,
                             headers={**headers, **({"Content-Length": size} if size else {})})
