"""Reading the footage log (the FOOTAGE stream) directly: chunks and gaps of cameras in time order.

This is the source of truth the index is built from; until a camera's footage is indexed, this is
how `spectare footage ls` lists it.
"""

import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from spectare.core.config import Settings
from spectare.core.errors import SchemaError
from spectare.schemas import Gap, Segment, decode_one_of

log = logging.getLogger(__name__)


async def read_footage(js: JetStreamContext, settings: Settings, camera: str | None = None,
                       start: float | None = None) -> list[Segment | Gap]:
    """Every chunk and gap announced since `start` (Unix seconds), ordered by start time.

    A gap is announced when it opens and again when it closes; only its latest state is kept.
    """
    names = settings.names
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_TIME,
        opt_start_time=None if start is None else datetime.fromtimestamp(start, UTC),
        inactive_threshold=30.0,
    )
    try:
        sub = await js.pull_subscribe(names.footage(camera or "*"), stream=names.footage_stream, config=config)
    except NotFoundError:
        return []
    items: dict[tuple[str, str, float], Segment | Gap] = {}
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=1.0)
            except TimeoutError:
                break
            for msg in batch:
                try:
                    item = decode_one_of(msg.data, Segment, Gap)
                except SchemaError as exc:
                    log.warning("unreadable footage event %s: %s", msg.subject, exc)
                    continue
                kind = "chunk" if isinstance(item, Segment) else "gap"
                items[(item.camera, kind, item.start)] = item
            if batch and batch[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return sorted(items.values(), key=lambda i: (i.start, i.camera, isinstance(i, Segment)))
