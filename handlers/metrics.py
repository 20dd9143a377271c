"""`GET /metrics`: the service's Prometheus metrics, with the inbox backlog read at scrape
time (another instance may have stored or applied rows since)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from handlers._runtime import runtime_of
from reconciler.inbox.queries import backlog


async def metrics_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    metrics, database = runtime.metrics, runtime.database
    try:
        async with database.read() as conn:
            current = await backlog(conn, datetime.now(UTC))
    except Exception:  # a scrape must still answer; NaN says "unknown", not "zero"
        metrics.inbox_depth.set(float("nan"))
        metrics.inbox_oldest_age.set(float("nan"))
    else:
        metrics.inbox_depth.set(current.depth)
        metrics.inbox_oldest_age.set(current.oldest_age_seconds)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
