"""The indexer's JetStream side: one durable pull consumer per stream it indexes, placed by the database.

Consumers `<consumer_prefix>_footage` (FOOTAGE), `<consumer_prefix>_detections` (DETECTIONS) and
`<consumer_prefix>_events` (EVENTS), AckPolicy.ALL.
At every start each is recreated to deliver from the stream sequence after the last one the database holds
(its `progress` table), whatever the consumer's own ack floor says: the database is the truth about what is
indexed. A new (or deleted) database file therefore replays each stream from its start, and a database
restored from a backup catches up from where it was. Opening, fetching and settling are
`spectare.core.consumer`'s.
"""

import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from spectare.core.consumer import PullConsumer
from spectare.core.logs import LogOnce
from spectare.schemas import Names

from .settings import IndexerSettings

log = logging.getLogger(__name__)


class StreamFeed:
    def __init__(self, js: JetStreamContext, kind: str, stream: str, subject: str, durable: str,
                 ix: IndexerSettings, log_once: LogOnce | None = None) -> None:
        self.js = js
        self.kind = kind
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.ix = ix
        self.consumer = PullConsumer(js, stream, self._config(0), log_once or LogOnce(log))

    def _config(self, committed_seq: int) -> ConsumerConfig:
        config = ConsumerConfig(
            durable_name=self.durable,
            description=f"Spectare indexer: {self.kind} into the index database",
            ack_policy=AckPolicy.ALL,
            ack_wait=self.ix.ack_wait_s,
            max_ack_pending=max(4 * self.ix.batch_size, 1_000),
            max_deliver=-1,
            filter_subject=self.subject,
        )
        if committed_seq > 0:
            config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, committed_seq + 1
        else:
            config.deliver_policy = DeliverPolicy.ALL
        return config

    async def open(self, committed_seq: int) -> None:
        """(Re)create the durable consumer to deliver from `committed_seq + 1`."""
        info = await self.js.stream_info(self.stream)
        first, last = info.state.first_seq, info.state.last_seq
        if committed_seq + 1 < first and last >= first:
            log.warning("%s: messages %d..%d expired from the stream before they were indexed", self.stream,
                        committed_seq + 1, first - 1)
        self.consumer.config = self._config(committed_seq)
        await self.consumer.open(recreate=True)
        log.info("%s: indexing from stream sequence %d (%d waiting)", self.stream, max(committed_seq + 1, first),
                 max(0, last - max(committed_seq, first - 1)))

    async def fetch(self, batch: int) -> list[Msg]:
        """Up to `batch` messages, [] when none came within a second or NATS is away (see PullConsumer.fetch)."""
        return await self.consumer.fetch(batch)

    async def close(self) -> None:
        """Unsubscribe (the durable consumer stays)."""
        await self.consumer.close()


def feeds_for(js: JetStreamContext, names: Names, ix: IndexerSettings,
              log_once: LogOnce | None = None) -> list[StreamFeed]:
    return [
        StreamFeed(js, "footage", names.footage_stream, names.footage("*"), ix.consumer("footage"), ix, log_once),
        StreamFeed(js, "detections", names.detections_stream, names.detections("*", "*"), ix.consumer("detections"),
                   ix, log_once),
        StreamFeed(js, "events", names.events_stream, names.events("*", "*"), ix.consumer("events"), ix, log_once),
    ]
