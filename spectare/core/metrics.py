"""Prometheus metrics for every service: `/metrics` on `metrics_port` (0: off), all names `spectare_*`.

Services keep plain tallies of what they do (packets, chunks, detections, errors); `StatsCollector` exposes
them at scrape time as counters, per camera where the tallies are per camera, so the hot paths stay free
of metric calls. Latencies are histograms observed where they happen. `ConsumerLag` samples how far each
durable consumer of the service is behind (`spectare.core.consumer.lag`: messages pending + delivered but not
acked).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping

from nats.js import JetStreamContext
from prometheus_client import REGISTRY, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from spectare.core.consumer import lag

log = logging.getLogger(__name__)

# Seconds: from tens of milliseconds (a detection) to a minute (a slow chunk upload).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
LAG_SAMPLE_S = 15.0

CONSUMER_LAG = Gauge("spectare_consumer_lag_messages",
                     "messages a durable consumer has not had acked yet (pending + awaiting ack)",
                     ["stream", "consumer"])


def start_metrics(service: str, port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics for this process (nothing when port is 0)."""
    if port:
        start_http_server(port, addr=host)
        log.info("%s metrics on http://%s:%d/metrics", service, host, port)


def histogram(service: str, name: str, documentation: str) -> Histogram:
    return Histogram(f"spectare_{service}_{name}", documentation, buckets=LATENCY_BUCKETS)


class StatsCollector(Collector):
    """Exposes a service's tallies as counters `spectare_<service>_<name>_total`.

    `read()` returns {label value: {tally name: value}}, e.g. {camera: {"packets": 120, ...}}; with
    `label=None` use one entry with key "".
    """

    def __init__(self, service: str, read: Callable[[], Mapping[str, Mapping[str, float]]],
                 documentation: Mapping[str, str], label: str | None = "camera") -> None:
        self.service = service
        self.read = read
        self.documentation = documentation
        self.label = label

    def collect(self) -> Iterable[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for label_value, tallies in sorted(self.read().items()):
            for name, value in tallies.items():
                family = families.get(name)
                if family is None:
                    family = families[name] = CounterMetricFamily(
                        f"spectare_{self.service}_{name}", self.documentation.get(name, name.replace("_", " ")),
                        labels=[self.label] if self.label else [])
                family.add_metric([label_value] if self.label else [], float(value))
        yield from families.values()


def register_stats(service: str, read: Callable[[], Mapping[str, Mapping[str, float]]],
                   documentation: Mapping[str, str], label: str | None = "camera") -> StatsCollector:
    collector = StatsCollector(service, read, documentation, label)
    REGISTRY.register(collector)
    return collector


class ConsumerLag:
    """Samples the lag of the consumers `consumers()` names, as (stream, consumer) pairs, every LAG_SAMPLE_S."""

    def __init__(self, js: JetStreamContext, consumers: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self.js = js
        self.consumers = consumers
        self.seen: set[tuple[str, str]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LAG_SAMPLE_S)

    async def sample(self) -> None:
        current = set(self.consumers())
        for stream, consumer in current:
            try:
                info = await self.js.consumer_info(stream, consumer, timeout=2.0)
            except Exception:  # gone, or NATS away: the gauge keeps its last value until the next sample
                continue
            CONSUMER_LAG.labels(stream, consumer).set(lag(info))
        for stream, consumer in self.seen - current:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(stream, consumer)
        self.seen = current
