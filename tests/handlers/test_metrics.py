from __future__ import annotations

import time
from dataclasses import replace

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from handlers._runtime import app_runtime
from handlers.app import create_app
from reconciler.config import Secret, Settings
from reconciler.inbox.events import InboxEvent
from tests.webhook_events import PLATFORM_SECRET, body_of, sign, snapshot_event


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_show_deliveries_and_the_backlog_at_scrape_time(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        webhook_secrets=(Secret(PLATFORM_SECRET),),
        inbox_worker_enabled=False,  # nothing is applied: the backlog stays
    )
    with TestClient(create_app(settings)) as client:
        before = samples(client)
        assert before[("reconciler_inbox_depth", ())] == 0
        assert before[("reconciler_inbox_oldest_age_seconds", ())] == 0
        for event_id in ("evt_1", "evt_2", "evt_1"):
            body = body_of(snapshot_event(event_id))
            client.post(
                "/webhooks/stripe",
                content=body,
                headers={"stripe-signature": sign(body, PLATFORM_SECRET)},
            )
        client.post("/webhooks/stripe", content=b"{}", headers={"stripe-signature": "t=1,v1=00"})
        after = samples(client)
    deliveries = "reconciler_webhook_deliveries_total"
    assert after[(deliveries, (("endpoint", "platform"), ("outcome", "stored")))] == 2
    assert after[(deliveries, (("endpoint", "platform"), ("outcome", "duplicate")))] == 1
    assert after[(deliveries, (("endpoint", "platform"), ("outcome", "bad_signature")))] == 1
    assert after[("reconciler_inbox_depth", ())] == 2
    assert after[("reconciler_inbox_oldest_age_seconds", ())] >= 0


def test_metrics_count_applied_events_per_app(database_url: str) -> None:
    applied: list[str] = []

    async def applier(event: InboxEvent) -> None:
        applied.append(event.stripe_event_id)

    settings = Settings(database_url=database_url, webhook_secrets=(Secret(PLATFORM_SECRET),))
    # Two apps running in one process: each has its own registry, no "duplicated timeseries"
    # (the other applies nothing, so every application is this one's).
    other = create_app(replace(settings, inbox_worker_enabled=False))
    with TestClient(create_app(settings, applier=applier)) as client, TestClient(other):
        running: Starlette = client.app  # type: ignore[assignment]
        registries = (app_runtime(other).metrics.registry, app_runtime(running).metrics.registry)
        body = body_of(snapshot_event("evt_applied"))
        client.post(
            "/webhooks/stripe",
            content=body,
            headers={"stripe-signature": sign(body, PLATFORM_SECRET)},
        )
        for _ in range(200):
            if samples(client)[("reconciler_inbox_depth", ())] == 0 and applied:
                break
            time.sleep(0.01)
        final = samples(client)
    assert applied == ["evt_applied"]
    assert final[("reconciler_inbox_applied_events_total", ())] == 1
    assert final[("reconciler_inbox_apply_duration_seconds_count", ())] == 1
    assert final[("reconciler_inbox_apply_failures_total", ())] == 0
    assert final[("reconciler_inbox_dead_events_total", ())] == 0
    assert registries[0] is not registries[1]
