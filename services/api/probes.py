"""What /stats measures, each part bounded by a timeout and answering None (unknown) rather than failing.

Packet facts cost two short-lived consumers per call, whatever the number of cameras, and never a payload:
both are headers-only (`Nats-Msg-Size` and `Nats-Msg-Id` arrive, the packet bytes stay on the server).
- last packet of every camera: DeliverPolicy LAST_PER_SUBJECT on `cams.*.packets`: one message per camera.
- rates: DeliverPolicy BY_START_TIME (now - rate_window_s) on `cams.*.packets`: the last few seconds of every
  camera, ~4 messages a second per camera (packets travel in groups).
Consumer lag: one CONSUMER.LIST per stream. Chunks and storage: SQL on the indexer; without an indexer, chunks
of the last hour come from the FOOTAGE stream and storage is unknown (listing a bucket is too slow).
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from spectare.core.config import Settings
from spectare.core.consumer import lag
from spectare.core.errors import SpectareError
from spectare.core.footage import read_footage
from spectare.core.redact import redact
from spectare.core.store import endpoint_url, s3_client, s3_errors
from spectare.schemas import Segment, parse_packets_id
from spectare.schemas.names import Names

from .rules import PacketSample

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_SAMPLES = 200_000  # a rate scan stops here (about 10,000 cameras over 5 s)


async def bounded(work: Awaitable[T], timeout_s: float, what: str) -> T | None:
    """`work`'s result, or None (logged) when it fails or takes longer than timeout_s."""
    try:
        return await asyncio.wait_for(work, timeout_s)
    except (TimeoutError, SpectareError, OSError, NotFoundError) as exc:
        log.debug("stats: %s unavailable: %s", what, exc or type(exc).__name__)
        return None
    except Exception as exc:  # nats-py raises several unrelated types when a server is away
        log.warning("stats: %s failed: %s", what, redact(str(exc)) or type(exc).__name__)
        return None


async def nats_check(nc: NATS, js: JetStreamContext, settings: Settings, timeout_s: float) -> tuple[bool, str]:
    where = redact(settings.nats.url)
    if not nc.is_connected:
        return False, f"NATS at {where} is not connected (reconnecting)"
    try:
        info = await asyncio.wait_for(js.account_info(), timeout_s)
    except Exception as exc:
        return False, f"NATS at {where}: JetStream does not answer: {exc or type(exc).__name__}"
    return True, f"JetStream at {where}: {info.streams} streams, {info.storage / 1e6:.1f} MB stored"


def s3_check(settings: Settings, timeout_s: float) -> tuple[bool, str]:
    client = s3_client(settings.s3, timeout_s=timeout_s, retries=0)
    try:
        with s3_errors(settings.s3, f"checking bucket {settings.s3.bucket}"):
            exists = client.bucket_exists(settings.s3.bucket)
    except SpectareError as exc:
        return False, str(exc)
    where = endpoint_url(settings.s3)
    return (True, f"S3 at {where}: bucket {settings.s3.bucket}") if exists else (
        False, f"S3 at {where}: bucket {settings.s3.bucket} does not exist")


async def _scan(js: JetStreamContext, names: Names, policy: DeliverPolicy, since: float | None,
                limit: int = MAX_SAMPLES) -> list[PacketSample]:
    """Every message a headers-only consumer on `cams.*.packets` delivers under `policy`, without payloads."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=policy, headers_only=True, inactive_threshold=10.0,
        opt_start_time=None if since is None else datetime.fromtimestamp(since, UTC),
        max_ack_pending=-1,
    )
    sub = await js.pull_subscribe(names.packets("*"), stream=names.media_stream, config=config)
    samples: list[PacketSample] = []
    try:
        while len(samples) < limit:
            try:
                batch = await sub.fetch(1000, timeout=0.5)
            except TimeoutError:
                break
            for msg in batch:
                samples.append(_sample(msg, names))
            if not batch or batch[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            await js.delete_consumer(names.media_stream, info.name)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return samples


def _sample(msg: Any, names: Names) -> PacketSample:
    headers = msg.headers or {}
    camera = names.parse(msg.subject).camera
    parsed = parse_packets_id(headers.get("Nats-Msg-Id"))
    try:
        size = int(headers.get("Nats-Msg-Size", 0))
    except ValueError:
        size = 0
    session, first_seq = (None, None) if parsed is None else (parsed.session, parsed.first_seq)
    return PacketSample(camera, msg.metadata.timestamp.timestamp(), size, session, first_seq)


async def last_packets(js: JetStreamContext, names: Names) -> dict[str, float]:
    """camera -> when its last packets message was stored (Unix seconds), for every camera with any kept."""
    samples = await _scan(js, names, DeliverPolicy.LAST_PER_SUBJECT, None)
    last: dict[str, float] = {}
    for s in samples:
        last[s.camera] = max(s.time, last.get(s.camera, 0.0))
    return last


async def recent_packets(js: JetStreamContext, names: Names, window_s: float) -> dict[str, list[PacketSample]]:
    """camera -> its packets messages of the last window_s seconds."""
    samples = await _scan(js, names, DeliverPolicy.BY_START_TIME, time.time() - window_s)
    by_camera: dict[str, list[PacketSample]] = defaultdict(list)
    for s in samples:
        by_camera[s.camera].append(s)
    return by_camera


async def consumer_lags(js: JetStreamContext, names: Names) -> list[dict[str, Any]]:
    """Pending and unacknowledged messages of every durable consumer on the four streams."""
    lags = []
    for stream in (names.media_stream, names.keyframes_stream, names.footage_stream, names.detections_stream):
        try:
            consumers = await js.consumers_info(stream)
        except NotFoundError:
            continue
        for info in consumers:
            if not info.config.durable_name:
                continue  # ephemeral readers (CLI tails, these stats) are not services
            lags.append({"stream": stream, "consumer": info.name, "pending": info.num_pending or 0,
                         "ack_pending": info.num_ack_pending or 0, "lag": lag(info)})
    return sorted(lags, key=lambda row: (row["stream"], row["consumer"]))


async def chunks_from_index(index: Any, since: float) -> tuple[dict[str, int], dict[str, int | None]]:
    """(camera -> chunks ending after `since`, storage totals) from the indexer's SQL."""
    per_camera = await index.sql(
        f"SELECT camera, count(*) FILTER (WHERE end_time > {since!r}) AS recent, count(*) AS chunks, "
        "coalesce(sum(bytes), 0) AS bytes FROM chunks GROUP BY camera"
    )
    recent = {row[0]: int(row[1]) for row in per_camera.rows}
    storage: dict[str, int | None] = {
        "footage_chunks": sum(int(row[2]) for row in per_camera.rows),
        "footage_bytes": sum(int(row[3]) for row in per_camera.rows),
        "snapshots": None,
    }
    try:
        snapshots = await index.sql("SELECT count(DISTINCT snapshot_key) FROM detections")
        storage["snapshots"] = int(snapshots.rows[0][0])
    except SpectareError as exc:  # a huge table past the query timeout: leave it unknown
        log.debug("stats: snapshot count unavailable: %s", exc)
    return recent, storage


async def chunks_from_stream(js: JetStreamContext, settings: Settings, since: float) -> dict[str, int]:
    """camera -> chunks announced on the FOOTAGE stream ending after `since` (without an indexer)."""
    counts: dict[str, int] = defaultdict(int)
    for item in await read_footage(js, settings, None, start=since):  # a chunk is announced after its end
        if isinstance(item, Segment) and item.end > since:
            counts[item.camera] += 1
    return dict(counts)
