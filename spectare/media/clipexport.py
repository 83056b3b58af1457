"""Clip export as the CLI (`spectare clip export`) and the HTTP API do it: the chunks covering a range, from the
indexer, downloaded by their presigned URLs, joined by `spectare.media.clips.export_clip` (PyAV, imported only
inside the functions that need it, so importing this module needs no PyAV), and optionally stored in the bucket
under `clips/<cam>/<start>-<end>.mp4` with a presigned URL."""

import shutil
import urllib.request
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from spectare.core.config import S3Settings
from spectare.core.errors import UnreachableError
from spectare.core.indexclient import IndexClient
from spectare.core.store import s3_client, s3_errors
from spectare.schemas.queries import ChunkRef, GapRef

if TYPE_CHECKING:
    from spectare.media.clips import ChunkFile, Clip

MAX_CHUNK_PAGES = 1000


async def chunks_between(index: IndexClient, camera: str, start: float, end: float,
                         ) -> tuple[list[ChunkRef], list[GapRef]]:
    """Every chunk and gap of camera in [start, end), asking the indexer page after page while it says there
    are more."""
    chunks: list[ChunkRef] = []
    gaps: list[GapRef] = []
    at = start
    for _ in range(MAX_CHUNK_PAGES):
        page = await index.chunks(camera, at, end)
        chunks += page.chunks
        gaps += [g for g in page.gaps if g not in gaps]
        if not page.truncated or not page.chunks:
            break
        at = page.chunks[-1].end
    return chunks, gaps


def download(url: str, path: Path, timeout_s: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:  # urllib's errors are OSErrors; the URL carries a signature, not a password
        raise UnreachableError(f"cannot download a chunk from S3: {exc}") from None


def download_chunks(refs: Sequence[ChunkRef], workdir: Path,
                    downloaded: Callable[[ChunkRef], None] = lambda _r: None) -> "list[ChunkFile]":
    """Download `refs` into workdir as `ChunkFile`s; `downloaded` is called after each."""
    from spectare.media.clips import ChunkFile  # PyAV, deferred: see the module docstring

    files: list[ChunkFile] = []
    for ref in refs:
        path = workdir / f"{len(files):05d}.mp4"
        download(ref.url, path)
        files.append(ChunkFile(path, ref.start, ref.end))
        downloaded(ref)
    return files


def make_clip(refs: Sequence[ChunkRef], start: float, end: float, workdir: Path,
              output: Path | None = None) -> "Clip":
    """Download `refs` into workdir and join them into one MP4 of [start, end) at `output` (default
    workdir/clip.mp4); returns the `Clip`."""
    from spectare.media.clips import export_clip

    return export_clip(download_chunks(refs, workdir), start, end, output or workdir / "clip.mp4")


def store_clip(settings: S3Settings, path: Path, key: str, expires_s: float) -> str:
    """Upload the clip as `key` and return a presigned GET URL valid `expires_s` seconds."""
    client = s3_client(settings)
    with s3_errors(settings, f"storing the clip as {key}"):
        client.fput_object(settings.bucket, key, str(path), content_type="video/mp4")
        return client.presigned_get_object(settings.bucket, key, expires=timedelta(seconds=expires_s))
