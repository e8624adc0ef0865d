"""Prometheus metrics of one gateway app, in a registry of its own (several apps, one process).

With `smsgw serve --workers N` every scrape must count all N processes, whichever one the
kernel hands the connection to: the supervisor (workers.py) gives its workers a fresh directory
in PROMETHEUS_MULTIPROC_DIR, prometheus_client's multiprocess mode (each process writes its
values to memory-mapped files there, chosen when prometheus_client is imported) and `render`
reads all the workers' files: counters and histograms summed, gauges as each one's
`multiprocess_mode` says (queue depth, rates and open connections summed over the live workers,
the oldest pending MT their max, the store's health the most recent check). A gauge computed on
demand (`track_*`) is written to the file by `refresh`: at each scrape by the worker scraped,
every second by each worker (`keep_fresh`), so another worker's value is at most ~1 s old.

    smsgw_messages_total{carrier,command,outcome}       MOs taken; outcome is ok, a CONTRACT §1
                                                        error code, or duplicate (a carrier retry)
    smsgw_parse_errors_total{carrier,kind}              requests refused with a 4xx, by kind
                                                        (bad_json, missing_field, bad_signature, ...)
    smsgw_replies_total{carrier,message_type}           replies stored, by billing outcome
    smsgw_mt_sent_total{carrier}                        async MTs the carrier took (2xx)
    smsgw_mt_retries_total{carrier}                     failed MT attempts that will be retried
    smsgw_mt_failures_total{carrier}                    MTs given up (MO failed, charge refunded)
    smsgw_mt_queue_depth                                MTs waiting for delivery
    smsgw_mt_oldest_pending_seconds                     age of the oldest MT waiting for delivery (0: none)
    smsgw_mt_rate{carrier}                              SMS parts sent per second, measured over the
                                                        last 10 s (async MTs, retries included)
    smsgw_mt_rate_limit{carrier}                        the carrier's configured `tps`; only for
                                                        carriers that have one
    smsgw_delivery_reports_total{carrier,state}         delivery reports received
    smsgw_request_duration_seconds{route}               HTTP request latency
    smsgw_responses_total{route,status}                 HTTP responses by route and status code
    smsgw_store_up                                      1 when the message store committed a write at
                                                        the last check (/healthz, each /metrics scrape)
    smsgw_commit_batch_size                             operations per message-store transaction
    smsgw_commit_seconds                                message-store transaction time, BEGIN to the end
                                                        of COMMIT (its fsync): what each MO of it waited
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_EVERY = 1.0   # s between two writes of the computed gauges to the shared files (several workers)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # the workers' shared directory, or None for a lone process (prometheus_client decided at import)
        self.shared = os.environ.get(MULTIPROCESS_VARIABLE)
        self._computed: list[tuple[Gauge, Callable[[], float]]] = []
        self.registry = registry = CollectorRegistry()
        self.messages = Counter("smsgw_messages", "Inbound messages taken, by carrier, command and outcome",
                                ["carrier", "command", "outcome"], registry=registry)
        self.parse_errors = Counter("smsgw_parse_errors", "Requests refused with a 4xx, by kind",
                                    ["carrier", "kind"], registry=registry)
        self.replies = Counter("smsgw_replies", "Replies stored, by billing outcome (message_type)",
                               ["carrier", "message_type"], registry=registry)
        self.mt_sent = Counter("smsgw_mt_sent", "Async MTs taken by the carrier", ["carrier"], registry=registry)
        self.mt_retries = Counter("smsgw_mt_retries", "Failed MT attempts to be retried", ["carrier"],
                                  registry=registry)
        self.mt_failures = Counter("smsgw_mt_failures", "MTs given up: MO failed, charge refunded", ["carrier"],
                                   registry=registry)
        self.mt_queue_depth = Gauge("smsgw_mt_queue_depth", "MTs waiting for delivery", registry=registry,
                                    multiprocess_mode="livesum")
        self.mt_oldest_pending = Gauge("smsgw_mt_oldest_pending_seconds",
                                       "Seconds since the oldest MT waiting for delivery was stored (0: none)",
                                       registry=registry, multiprocess_mode="livemax")
        self.mt_rate = Gauge("smsgw_mt_rate", "SMS parts sent per second over the last 10 s", ["carrier"],
                             registry=registry, multiprocess_mode="livesum")
        self.mt_rate_limit = Gauge("smsgw_mt_rate_limit", "Configured MT limit (tps), SMS parts per second",
                                   ["carrier"], registry=registry, multiprocess_mode="livemax")
        self.delivery_reports = Counter("smsgw_delivery_reports", "Delivery reports received",
                                        ["carrier", "state"], registry=registry)
        self.request_latency = Histogram("smsgw_request_duration_seconds", "HTTP request latency", ["route"],
                                         buckets=_LATENCY_BUCKETS, registry=registry)
        self.responses = Counter("smsgw_responses", "HTTP responses by route and status code",
                                 ["route", "status"], registry=registry)
        self.store_up = Gauge("smsgw_store_up", "1 when the message store committed a write at the last check "
                              "(/healthz, each /metrics scrape), 0 when it failed", registry=registry,
                              multiprocess_mode="livemostrecent")
        self.commit_batch = Histogram("smsgw_commit_batch_size", "Operations per message-store transaction",
                                      buckets=_BATCH_BUCKETS, registry=registry)
        self.commit_seconds = Histogram("smsgw_commit_seconds", "Message-store transaction time, BEGIN to COMMIT",
                                        buckets=_COMMIT_BUCKETS, registry=registry)
        self.connections_open = Gauge("smsgw_connections_open", "Client connections open (smsgw serve)",
                                      registry=registry, multiprocess_mode="livesum")
        self.connections_closed = Counter(
            "smsgw_connections_closed", "Client connections closed by the gateway: header_timeout, "
            "body_timeout, evicted (the longest-idle one, at max_connections)", ["reason"], registry=registry)
        self.accept_failures = Counter("smsgw_accept_failures", "Connections not accepted: no file descriptor left",
                                       registry=registry)

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        self._compute(self.mt_queue_depth, depth)

    def track_oldest_pending(self, age: Callable[[], float]) -> None:
        self._compute(self.mt_oldest_pending, age)

    def track_connections_open(self, count: Callable[[], float]) -> None:
        self._compute(self.connections_open, count)

    def track_mt_rate(self, carrier: str, measured: Callable[[], float], limit: float | None) -> None:
        """Export a carrier's measured MT rate, and its configured limit when it has one."""
        self._compute(self.mt_rate.labels(carrier), measured)
        if limit is not None:
            self.mt_rate_limit.labels(carrier).set(limit)

    def _compute(self, gauge: Gauge, value: Callable[[], float]) -> None:
        if self.shared:   # the other workers read the files: the value is written there by refresh
            self._computed.append((gauge, value))
            gauge.set(value())
        else:
            gauge.set_function(value)

    def refresh(self) -> None:
        """Write the computed gauges' values now (several workers only)."""
        for gauge, value in self._computed:
            gauge.set(value())

    async def keep_fresh(self, every: float = REFRESH_EVERY) -> None:
        """`refresh` every `every` seconds until cancelled, so that another worker's scrape sees this one's."""
        while True:
            await asyncio.sleep(every)
            self.refresh()

    def render(self) -> bytes:
        """The exposition text: this app's registry, or with several workers all of them."""
        if not self.shared:
            return generate_latest(self.registry)
        self.refresh()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.shared)
        return generate_latest(registry)
