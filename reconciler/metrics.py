"""The service's Prometheus metrics, on a registry of their own (not the process-global one),
so that each app built in a test process counts for itself."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# What a webhook delivery came to; every request ends in exactly one of these.
DELIVERY_OUTCOMES = (
    "stored",
    "duplicate",
    "ignored",
    "bad_signature",
    "malformed",
    "too_large",
    "unavailable",
)


class Metrics:
    """Counters the request path and the worker update, gauges filled at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "reconciler_webhook_deliveries",
            "Webhook deliveries by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        # `labels()` takes a lock and builds a key on every call; a delivery costs one lookup.
        self._delivery_counters: dict[tuple[str, str], Any] = {}
        self.inbox_depth = Gauge(
            "reconciler_inbox_depth",
            "Inbox events not yet applied (received, processing or failed).",
            registry=self.registry,
        )
        self.inbox_oldest_age = Gauge(
            "reconciler_inbox_oldest_age_seconds",
            "Age of the oldest inbox event not yet applied.",
            registry=self.registry,
        )
        self.apply_duration = Histogram(
            "reconciler_inbox_apply_duration_seconds",
            "Time to apply one inbox event, whatever the result.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.apply_failures = Counter(
            "reconciler_inbox_apply_failures",
            "Inbox events whose apply raised (each try counts).",
            registry=self.registry,
        )
        self.dead_events = Counter(
            "reconciler_inbox_dead_events",
            "Inbox events declared dead after their last try.",
            registry=self.registry,
        )
        self.applied = Counter(
            "reconciler_inbox_applied_events",
            "Inbox events applied successfully.",
            registry=self.registry,
        )
        self.job_runs = Counter(
            "reconciler_job_runs",
            "Scheduled job runs made by this instance, by job and outcome.",
            ["job", "outcome"],
            registry=self.registry,
        )
        # The newest run of each job by any instance, read from the database at scrape time.
        self.job_last_started = Gauge(
            "reconciler_job_last_started_timestamp_seconds",
            "When the newest run of the job started (Unix time).",
            ["job"],
            registry=self.registry,
        )
        self.job_last_duration = Gauge(
            "reconciler_job_last_duration_seconds",
            "How long the newest finished run of the job took.",
            ["job"],
            registry=self.registry,
        )
        self.job_last_succeeded = Gauge(
            "reconciler_job_last_succeeded",
            "1 if the newest finished run of the job succeeded, 0 if it failed.",
            ["job"],
            registry=self.registry,
        )

    def delivery(self, endpoint: str, outcome: str) -> None:
        """Count one webhook delivery."""
        counter = self._delivery_counters.get((endpoint, outcome))
        if counter is None:
            counter = self._delivery_counters[endpoint, outcome] = self.deliveries.labels(
                endpoint, outcome
            )
        counter.inc()
