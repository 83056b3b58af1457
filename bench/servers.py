"""What every service benchmark starts from: settings for its own nats-server and S3 server, the bucket, and a
connection with the streams and buckets created."""

import secrets
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings, load_settings
from spectare.core.store import ensure_bucket
from spectare.local.servers import NatsServer, SeaweedS3


async def open_bench_bus(nats: NatsServer, s3: SeaweedS3 | None, work: Path) -> tuple[Settings, NATS, JetStreamContext]:
    """Settings (prefix `bench`, a fresh bucket), the bucket created when there is an S3 server, and a connection
    whose streams and buckets exist."""
    s3_settings = {} if s3 is None else {
        "endpoint": s3.endpoint, "access_key": s3.credentials.access_key,
        "secret_key": s3.credentials.secret_key, "bucket": "bench" + secrets.token_hex(4)}
    settings = load_settings(prefix="bench", state_dir=work, nats={"url": nats.url}, s3=s3_settings)
    if s3 is not None:
        ensure_bucket(settings.s3)
    nc = await connect(settings, "bench")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    return settings, nc, js
