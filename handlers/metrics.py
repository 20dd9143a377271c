"""`GET /metrics`: the service's Prometheus metrics, with the inbox backlog and each scheduled
job's newest run read at scrape time (another instance may have stored, applied or run
since)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from handlers._runtime import runtime_of
from reconciler.inbox.queries import backlog
from reconciler.job_runs import FAILED, SUCCEEDED, JobRun, latest_runs
from reconciler.metrics import Metrics


async def metrics_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    metrics, database = runtime.metrics, runtime.database
    try:
        async with database.read() as conn:
            current = await backlog(conn, datetime.now(UTC))
            runs = await latest_runs(conn)
    except Exception:  # a scrape must still answer; NaN says "unknown", not "zero"
        metrics.inbox_depth.set(float("nan"))
        metrics.inbox_oldest_age.set(float("nan"))
    else:
        metrics.inbox_depth.set(current.depth)
        metrics.inbox_oldest_age.set(current.oldest_age_seconds)
        _job_gauges(metrics, runs)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _job_gauges(metrics: Metrics, runs: dict[str, JobRun]) -> None:
    for job, run in runs.items():
        metrics.job_last_started.labels(job).set(run.started_at.timestamp())
        # A run still going (or whose process died) keeps the figures of none finished.
        if run.outcome in (SUCCEEDED, FAILED) and run.duration_ms is not None:
            metrics.job_last_duration.labels(job).set(run.duration_ms / 1000)
            metrics.job_last_succeeded.labels(job).set(1 if run.outcome == SUCCEEDED else 0)
