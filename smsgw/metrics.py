"""Prometheus metrics of one gateway app, in a registry of its own (several apps, one process).

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

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
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
        self.mt_queue_depth = Gauge("smsgw_mt_queue_depth", "MTs waiting for delivery", registry=registry)
        self.mt_oldest_pending = Gauge("smsgw_mt_oldest_pending_seconds",
                                       "Seconds since the oldest MT waiting for delivery was stored (0: none)",
                                       registry=registry)
        self.mt_rate = Gauge("smsgw_mt_rate", "SMS parts sent per second over the last 10 s", ["carrier"],
                             registry=registry)
        self.mt_rate_limit = Gauge("smsgw_mt_rate_limit", "Configured MT limit (tps), SMS parts per second",
                                   ["carrier"], registry=registry)
        self.delivery_reports = Counter("smsgw_delivery_reports", "Delivery reports received",
                                        ["carrier", "state"], registry=registry)
        self.request_latency = Histogram("smsgw_request_duration_seconds", "HTTP request latency", ["route"],
                                         buckets=_LATENCY_BUCKETS, registry=registry)
        self.responses = Counter("smsgw_responses", "HTTP responses by route and status code",
                                 ["route", "status"], registry=registry)
        self.store_up = Gauge("smsgw_store_up", "1 when the message store committed a write at the last check "
                              "(/healthz, each /metrics scrape), 0 when it failed", registry=registry)
        self.commit_batch = Histogram("smsgw_commit_batch_size", "Operations per message-store transaction",
                                      buckets=_BATCH_BUCKETS, registry=registry)
        self.commit_seconds = Histogram("smsgw_commit_seconds", "Message-store transaction time, BEGIN to COMMIT",
                                        buckets=_COMMIT_BUCKETS, registry=registry)
        self.connections_open = Gauge("smsgw_connections_open", "Client connections open (smsgw serve)",
                                      registry=registry)
        self.connections_closed = Counter(
            "smsgw_connections_closed", "Client connections closed by the gateway: header_timeout, "
            "body_timeout, evicted (the longest-idle one, at max_connections)", ["reason"], registry=registry)
        self.accept_failures = Counter("smsgw_accept_failures", "Connections not accepted: no file descriptor left",
                                       registry=registry)

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        self.mt_queue_depth.set_function(depth)

    def track_oldest_pending(self, age: Callable[[], float]) -> None:
        self.mt_oldest_pending.set_function(age)

    def track_mt_rate(self, carrier: str, measured: Callable[[], float], limit: float | None) -> None:
        """Export a carrier's measured MT rate, and its configured limit when it has one."""
        self.mt_rate.labels(carrier).set_function(measured)
        if limit is not None:
            self.mt_rate_limit.labels(carrier).set(limit)

    def render(self) -> bytes:
        return generate_latest(self.registry)
