"""The MQTT bridge: every tracked-object event again as JSON, for home automation, on the NATS subject
`<mqtt_prefix>.events.<cam>.<label>`, which nats-server's built-in MQTT listener shows MQTT clients as the topic
`<mqtt_prefix>/events/<cam>/<label>` (NATS `.` is MQTT `/`). No second broker: Home Assistant connects to the
listener `spectare up` opens.

Why here: the EVENTS stream holds msgpack (what services read), while MQTT clients want JSON; something must
re-encode each message once. The API runs as many replicas (each would publish every event again) and the
detector's tracker is a hot path of another service; the indexer already consumes EVENTS. The bridge reads
its own durable consumer (`mqtt_bridge`, AckPolicy.EXPLICIT, created to deliver new events only), so a rebuild of
the index database replays nothing to MQTT, indexers of one deployment share the consumer (each event goes out
once), and events published while the indexer was down go out when it is back, unless older than
`mqtt_stale_after_s`. Delivery is at least once: a crash between the publish and its ack sends that one again.

The JSON subject must not be one the EVENTS stream captures (it would store JSON among its msgpack): it is not
when `mqtt_prefix` differs from the deployment's name prefix, which `check_prefix` enforces.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from spectare.core.config import Settings
from spectare.core.consumer import Ack, PullConsumer, settle
from spectare.core.errors import ConfigError, SchemaError
from spectare.core.eventjson import event_json
from spectare.core.logs import LogOnce
from spectare.core.retry import describe_error
from spectare.schemas import ObjectEvent

from .settings import IndexerSettings

log = logging.getLogger(__name__)

DURABLE = "mqtt_bridge"
FETCH_BATCH = 100
METRICS = {
    "mqtt_published": "tracked-object events republished as JSON for MQTT",
    "mqtt_stale": "events not republished: older than mqtt_stale_after_s when the bridge got them",
    "mqtt_garbage": "undecodable messages on the events subjects, terminated",
}


@dataclass
class BridgeStats:
    mqtt_published: int = 0
    mqtt_stale: int = 0
    mqtt_garbage: int = 0


def check_prefix(mqtt_prefix: str, name_prefix: str) -> None:
    """ConfigError when the JSON subjects would fall into the EVENTS stream (`<prefix>.events.<cam>.<label>`)."""
    if mqtt_prefix == name_prefix:
        raise ConfigError(f"indexer.mqtt_prefix {mqtt_prefix!r} is also the deployment's name prefix: the JSON "
                          f"events would land in the EVENTS stream; choose another mqtt_prefix")


def mqtt_subject(mqtt_prefix: str, event: ObjectEvent) -> str:
    """The NATS subject whose MQTT topic is `<mqtt_prefix>/events/<cam>/<label>`."""
    return f"{mqtt_prefix}.events.{event.camera}.{event.label}"


def is_stale(event: ObjectEvent, now: float, stale_after_s: float) -> bool:
    return now - event.time > stale_after_s


class EventBridge:
    def __init__(self, nc: NATS, js: JetStreamContext, settings: Settings, ix: IndexerSettings) -> None:
        check_prefix(ix.mqtt_prefix, settings.names.prefix)
        self.nc = nc
        self.ix = ix
        self.bucket = settings.s3.bucket
        self.stats = BridgeStats()
        self.log_once = LogOnce(log)
        names = settings.names
        self.consumer = PullConsumer(js, names.events_stream, ConsumerConfig(
            durable_name=DURABLE, description="Spectare indexer: events as JSON for MQTT",
            deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_deliver=-1,
            max_ack_pending=1_000, filter_subject=names.events("*", "*")), self.log_once)

    async def run(self) -> None:
        await self._open()
        log.info("MQTT bridge up: events as JSON on %s.events.<camera>.<label> (MQTT topic %s/events/...)",
                 self.ix.mqtt_prefix, self.ix.mqtt_prefix)
        try:
            while True:
                try:
                    msgs = await self.consumer.fetch(FETCH_BATCH)
                except Exception as exc:  # the consumer was deleted, the stream recreated: place it again
                    self.log_once.warning("mqtt:fetch", "MQTT bridge: fetching events failed (%s); reopening",
                                          describe_error(exc))
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(Exception):
                        await self._open()
                    continue
                for msg in msgs:
                    await self._forward(msg)
        finally:
            await self.consumer.close()

    async def _open(self) -> None:
        await self.consumer.open(recreate=False)  # shared by the indexers: keep its position

    async def _forward(self, msg: Msg) -> None:
        try:
            event = ObjectEvent.decode(msg.data)
        except SchemaError as exc:
            self.stats.mqtt_garbage += 1
            self.log_once.warning("mqtt:garbage", "MQTT bridge: terminated an unreadable message on %s: %s",
                                  msg.subject, exc)
            await settle(msg, Ack.TERM)
            return
        if is_stale(event, time.time(), self.ix.mqtt_stale_after_s):
            self.stats.mqtt_stale += 1
        else:
            await self.nc.publish(mqtt_subject(self.ix.mqtt_prefix, event), event_json(event, self.bucket).encode())
            self.stats.mqtt_published += 1
        await settle(msg, Ack.ACK, on_error=lambda exc: self.log_once.warning(
            "mqtt:ack", "MQTT bridge: ack failed (%s): the event may go out again", describe_error(exc)))
