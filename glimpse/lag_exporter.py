"""A Prometheus exporter of every pipeline group's lag, read from the broker at each
scrape, so that a stage with no worker running (scaled to zero, crashed, never started)
still shows its backlog. Workers export their own partitions' lag as well
(``glimpse_consumer_lag_messages``); this one is the broker's view of the group.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from glimpse.config import KafkaSettings
from glimpse.group_lag import Discover, read_group_lag
from glimpse.metrics import service_registry
from glimpse.stages import consumer_groups, side_by_side_groups

log = logging.getLogger(__name__)


class GroupLagCollector(Collector):
    """Reads the lag on every collect (one OffsetFetch per group, one small Fetch); with
    ``discover``, of the groups it picks from the broker's list too (side-by-side
    workers' groups, which only their workers can name)."""

    def __init__(
        self,
        bootstrap: str,
        groups: Mapping[str, Sequence[str]],
        timeout_s: float = 5.0,
        discover: Discover | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._groups = dict(groups)
        self._timeout_s = timeout_s
        self._discover = discover

    def describe(self) -> Iterator[Metric]:
        """The families without reading the broker (registration, metric listings)."""
        return self._families()

    def collect(self) -> Iterator[Metric]:
        return self._families(read=True)

    def _families(self, read: bool = False) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "glimpse_consumer_group_lag_messages",
            "Messages the group has not committed, per partition, read from the broker "
            "(fetch high watermark - committed offset)",
            labels=["group", "topic", "partition"],
        )
        end = GaugeMetricFamily(
            "glimpse_topic_end_offset",
            "The partition's high watermark: messages ever written to it",
            labels=["topic", "partition"],
        )
        ok = GaugeMetricFamily(
            "glimpse_lag_exporter_up", "1 if the broker answered this scrape, else 0"
        )
        seconds = GaugeMetricFamily(
            "glimpse_lag_exporter_scrape_seconds", "Time to read the lag from the broker"
        )
        if not read:
            yield from (lag, end, ok, seconds)
            return
        started = time.perf_counter()
        try:
            partitions = read_group_lag(
                self._bootstrap, self._groups, self._timeout_s, self._discover
            )
        except Exception as exc:  # a scrape must answer; the gauge says it failed
            log.warning("reading consumer lag failed: %r", exc)
            ok.add_metric([], 0)
        else:
            ok.add_metric([], 1)
            ends: dict[tuple[str, str], int] = {}
            for p in partitions:
                lag.add_metric([p.group, p.topic, str(p.partition)], p.lag)
                ends[(p.topic, str(p.partition))] = p.end
            for labels, value in sorted(ends.items()):
                end.add_metric(list(labels), value)
        seconds.add_metric([], time.perf_counter() - started)
        yield from (lag, end, ok, seconds)


class LagExporter:
    """``/metrics`` with :class:`GroupLagCollector` on ``host:port``, in a thread."""

    def __init__(
        self,
        host: str,
        port: int,
        bootstrap: str,
        groups: Mapping[str, Sequence[str]],
        discover: Discover | None = None,
    ) -> None:
        self.registry = service_registry()
        self.registry.register(GroupLagCollector(bootstrap, groups, discover=discover))
        self._server: WSGIServer | None = None
        self._host, self._port = host, port

    @classmethod
    def of_pipeline(cls, host: str, port: int, kafka: KafkaSettings) -> LagExporter:
        """Every pipeline group, side-by-side workers' included."""
        assert kafka.bootstrap
        return cls(host, port, kafka.bootstrap, consumer_groups(kafka),
                   discover=partial(side_by_side_groups, kafka))  # fmt: skip

    def start(self) -> None:
        self._server, _thread = start_http_server(self._port, self._host, self.registry)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
