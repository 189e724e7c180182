"""Prometheus metrics of one process: requests, open sockets, broker events, push latency.

Each app owns its registry (tests build many apps in one process). With several workers
each process answers /metrics for itself: scrape every worker, or one port per worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BROKER_COUNTERS = ("published", "delivered", "dropped", "interrupted", "publish_failures")


class _BrokerCollector(Collector):
    """Reads the broker's own counters at scrape time (no double bookkeeping)."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "pixweb_broker_events", "Broker events by outcome", labels=["outcome"]
        )
        for name in BROKER_COUNTERS:
            family.add_metric([name], float(getattr(self.broker, name, 0)))
        yield family


class _Open(AbstractContextManager[None]):
    """A gauge raised for the block (a class: each open socket holds one all its life, and
    a suspended generator-based context manager costs ~0.5 KB more)."""

    __slots__ = ("_gauge",)

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge

    def __enter__(self) -> None:
        self._gauge.inc()

    def __exit__(self, *exc_info: object) -> None:
        self._gauge.dec()


class Metrics:
    """The metrics one app exports."""

    def __init__(self, broker: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pixweb_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.sockets = Gauge(
            "pixweb_open_websockets", "Open WebSockets by kind", ["kind"], registry=self.registry
        )
        self.push_latency = Histogram(
            "pixweb_confirmation_push_seconds",
            "From a committed state change to its fragment sent on a socket",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        self.pix_recorded = Counter(
            "pixweb_pix_recorded",
            "Received Pix recorded (once each), by what brought them",
            ["source"],
            registry=self.registry,
        )
        self.webhook_refused = Counter(
            "pixweb_webhook_items_refused",
            "Webhook items not recorded because the merchant's PSP did not confirm them",
            ["reason"],
            registry=self.registry,
        )
        self.reconciliation_runs = Counter(
            "pixweb_reconciliation_runs",
            "Reconciliation runs per merchant by outcome (ok, failed, busy: another worker had it)",
            ["outcome"],
            registry=self.registry,
        )
        self.reconciliation_lag = Gauge(
            "pixweb_reconciliation_lag_seconds",
            "Seconds from the oldest merchant's reconciliation checkpoint to the last pass",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "pixweb_webhook_deliveries",
            "Merchant webhook deliveries finished, by outcome (succeeded, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "pixweb_webhook_attempts",
            "Merchant webhook POSTs, by answer (2xx, 3xx, 4xx, 5xx, error: no answer)",
            ["answer"],
            registry=self.registry,
        )
        self.webhook_oldest_pending = Gauge(
            "pixweb_webhook_oldest_pending_seconds",
            "Age of the oldest merchant webhook delivery still owed (0: none)",
            registry=self.registry,
        )
        self.registry.register(_BrokerCollector(broker))

    def socket_open(self, kind: str) -> AbstractContextManager[None]:
        """Count a socket as open for the duration of the block."""
        return _Open(self.sockets.labels(kind))

    def pushed(self, event: dict[str, Any]) -> None:
        """Record the latency of a push caused by `event` (stamped `at` when published)."""
        if isinstance(at := event.get("at"), int | float):
            self.push_latency.observe(max(time.time() - at, 0.0))

    def webhook_sent(self, result: Any) -> None:
        """Count one delivery attempt (a services.delivery_outcome.Result)."""
        if result.attempted:
            code = result.status_code
            self.webhook_attempts.labels(f"{code // 100}xx" if code else "error").inc()
        if str(result.outcome) != "retrying":
            self.webhook_deliveries.labels(str(result.outcome)).inc()

    def render(self) -> bytes:
        """The exposition text for a scrape."""
        return generate_latest(self.registry)
