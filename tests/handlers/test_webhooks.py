from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from handlers._runtime import app_runtime, set_runtime
from handlers.app import create_app
from handlers.webhooks import MAX_BODY_BYTES
from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.db.tables import inbox_events
from reconciler.inbox.signature import compute_signature
from reconciler.inbox.writer import InboxWriter
from tests.webhook_events import (
    CONNECT_SECRET,
    PLATFORM_OLD_SECRET,
    PLATFORM_SECRET,
    body_of,
    sign,
    snapshot_event,
    thin_event,
)

PLATFORM_URL, CONNECT_URL = "/webhooks/stripe", "/webhooks/stripe/connect"


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "webhook_secrets": (Secret(PLATFORM_SECRET), Secret(PLATFORM_OLD_SECRET)),
        "connect_webhook_secrets": (Secret(CONNECT_SECRET),),
        # Rows stay `received`: these tests are about the request, not the worker.
        "inbox_worker_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(database_url))) as test_client:
        yield test_client


def post(
    client: TestClient, body: bytes, header: str | None, url: str = PLATFORM_URL
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["stripe-signature"] = header
    response = client.post(url, content=body, headers=headers)
    return response.status_code, response.json()


def rows(client: TestClient) -> list[dict[str, Any]]:
    database = app_runtime(client.app).database  # type: ignore[arg-type]

    async def fetch() -> list[dict[str, Any]]:
        async with database.read() as conn:
            result = await conn.execute(select(inbox_events).order_by(inbox_events.c.id))
            return [dict(row._mapping) for row in result]

    return client.portal.call(fetch)  # type: ignore[union-attr]


def deliveries(client: TestClient, endpoint: str, outcome: str) -> float:
    registry = app_runtime(client.app).metrics.registry  # type: ignore[arg-type]
    value = registry.get_sample_value(
        "reconciler_webhook_deliveries_total", {"endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


@pytest.mark.parametrize("secret", [PLATFORM_SECRET, PLATFORM_OLD_SECRET])
def test_webhook_each_secret_of_a_rotation_is_stored(client: TestClient, secret: str) -> None:
    event = snapshot_event("evt_rotation")
    body = body_of(event)
    assert post(client, body, sign(body, secret)) == (200, {"status": "stored"})
    [row] = rows(client)
    assert (row["stripe_event_id"], row["endpoint"], row["status"]) == (
        "evt_rotation",
        "platform",
        "received",
    )
    assert (row["event_type"], row["stripe_created"], row["livemode"]) == (
        "payment_intent.succeeded",
        1_790_000_000,
        False,
    )
    assert row["payload"] == body.decode()  # the raw text, as Stripe sent it
    assert deliveries(client, "platform", "stored") == 1


def test_webhook_connect_endpoint_uses_its_own_secret(client: TestClient) -> None:
    body = body_of(snapshot_event("evt_connect", "account.updated", account="acct_1"))
    assert post(client, body, sign(body, PLATFORM_SECRET), CONNECT_URL)[0] == 400
    assert post(client, body, sign(body, CONNECT_SECRET), PLATFORM_URL)[0] == 400
    assert post(client, body, sign(body, CONNECT_SECRET), CONNECT_URL)[0] == 200
    [row] = rows(client)
    assert (row["endpoint"], row["account"]) == ("connect", "acct_1")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (lambda body: sign(body, "whsec_wrong"), "no signature matches"),
        (lambda body: sign(body.replace(b"1000", b"9999"), PLATFORM_SECRET), "no signature"),
        (lambda body: sign(body, PLATFORM_SECRET, int(time.time()) - 301), "too old"),
        (lambda body: sign(body, PLATFORM_SECRET, int(time.time()) + 301), "future"),
        (lambda body: None, "missing Stripe-Signature header"),
        (lambda body: "t=,v1", "malformed"),
        (lambda body: "v0=abc,t=" + str(int(time.time())), "no v1 signature"),
    ],
    ids=["wrong-secret", "tampered", "stale", "far-future", "missing", "garbled", "v0-only"],
)
def test_webhook_bad_signature_is_400_stores_nothing_and_is_counted(
    client: TestClient, caplog: pytest.LogCaptureFixture, header: Any, reason: str
) -> None:
    body = body_of(snapshot_event("evt_bad"))
    with caplog.at_level(logging.WARNING, logger="handlers.webhooks"):
        status, answer = post(client, body, header(body))
    assert status == 400 and reason in answer["error"]
    assert rows(client) == []
    assert deliveries(client, "platform", "bad_signature") == 1
    logged = caplog.text
    assert "webhook platform refused" in logged
    assert PLATFORM_SECRET not in logged and "evt_bad" not in logged and "v1=" not in logged


def test_webhook_several_v1_with_one_good_is_stored(client: TestClient) -> None:
    body = body_of(snapshot_event("evt_multi"))
    good = sign(body, PLATFORM_SECRET)
    timestamp, signature = good.split(",")
    header = f"{timestamp},v1={'ab' * 32},{signature},v0={'cd' * 32}"
    assert post(client, body, header) == (200, {"status": "stored"})


def test_webhook_body_over_one_mebibyte_is_413_unread(client: TestClient) -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    status, answer = post(client, body, sign(body, PLATFORM_SECRET))
    assert (status, answer) == (413, {"error": "body too large"})
    assert rows(client) == []
    assert deliveries(client, "platform", "too_large") == 1


def test_webhook_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(17):
            yield b"y" * 65536

    response = client.post(PLATFORM_URL, content=chunks(), headers={"stripe-signature": "t=1"})
    assert response.status_code == 413
    assert rows(client) == []


def test_webhook_body_of_exactly_one_mebibyte_is_accepted(client: TestClient) -> None:
    event = snapshot_event("evt_big")
    event["padding"] = ""
    event["padding"] = "p" * (MAX_BODY_BYTES - len(body_of(event)))
    body = body_of(event)
    assert len(body) == MAX_BODY_BYTES
    assert post(client, body, sign(body, PLATFORM_SECRET))[0] == 200


# The last: the envelope is fine, the object inside (skipped, never decoded) is not JSON.
BROKEN_INSIDE = b'{"id":"evt_1","type":"a.b","livemode":false,"created":1,"data":{"object":nul}}'


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"id": "evt_1"}', b"\xff\xfe", BROKEN_INSIDE]
)
def test_webhook_signed_but_not_an_event_is_400(client: TestClient, body: bytes) -> None:
    now = int(time.time())  # signed byte for byte (the SDK's signer wants text)
    header = f"t={now},v1={compute_signature(PLATFORM_SECRET, now, body)}"
    status, _ = post(client, body, header)
    assert status == 400
    assert rows(client) == []
    assert deliveries(client, "platform", "malformed") == 1


def test_webhook_duplicate_is_200_and_stores_nothing_new(client: TestClient) -> None:
    body = body_of(snapshot_event("evt_twice"))
    assert post(client, body, sign(body, PLATFORM_SECRET)) == (200, {"status": "stored"})
    assert post(client, body, sign(body, PLATFORM_SECRET)) == (200, {"status": "duplicate"})
    assert len(rows(client)) == 1


def test_webhook_one_event_delivered_twice_concurrently_is_one_row(client: TestClient) -> None:
    body = body_of(snapshot_event("evt_concurrent"))
    barrier = threading.Barrier(2)

    def deliver() -> tuple[int, dict[str, Any]]:
        barrier.wait()
        return post(client, body, sign(body, PLATFORM_SECRET))

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(answer["status"] for _, answer in pool.map(lambda _: deliver(), [0, 1]))
    assert answers == ["duplicate", "stored"]
    assert len(rows(client)) == 1


def test_webhook_unknown_event_type_is_stored(client: TestClient) -> None:
    body = body_of(snapshot_event("evt_new_kind", "issuing_card.created"))
    assert post(client, body, sign(body, PLATFORM_SECRET)) == (200, {"status": "stored"})
    assert rows(client)[0]["event_type"] == "issuing_card.created"


def test_webhook_live_event_on_a_test_service_is_recorded_and_ignored(client: TestClient) -> None:
    body = body_of(snapshot_event("evt_live", livemode=True))
    assert post(client, body, sign(body, PLATFORM_SECRET)) == (200, {"status": "ignored"})
    [row] = rows(client)
    assert (row["status"], row["last_error"]) == (
        "ignored",
        "live-mode event on a test-mode service",
    )


def test_webhook_test_event_on_a_live_service_is_ignored(database_url: str) -> None:
    settings = settings_for(database_url, stripe_api_key=Secret("sk_live_abc"))
    with TestClient(create_app(settings)) as client:
        body = body_of(snapshot_event("evt_test"))
        assert post(client, body, sign(body, PLATFORM_SECRET)) == (200, {"status": "ignored"})
        assert rows(client)[0]["status"] == "ignored"


def test_webhook_thin_event_is_verified_and_stored(client: TestClient) -> None:
    event = thin_event("evt_thin", account="acct_9")
    body = body_of(event)
    assert post(client, body, sign(body, "whsec_wrong"), CONNECT_URL)[0] == 400
    assert post(client, body, sign(body, CONNECT_SECRET), CONNECT_URL)[0] == 200
    [row] = rows(client)
    assert (row["event_type"], row["account"], row["stripe_created"]) == (
        "v1.billing.meter.error_report_triggered",
        "acct_9",
        1_795_694_400,  # 2026-11-26T12:00:00Z
    )
    assert json.loads(row["payload"])["related_object"]["id"] == "mtr_123"


def test_webhook_database_unavailable_is_503(client: TestClient) -> None:
    app: Starlette = client.app  # type: ignore[assignment]
    down = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    healthy = app_runtime(app)
    broken = InboxWriter(down)
    client.portal.call(broken.start)  # type: ignore[union-attr]
    set_runtime(app, replace(healthy, inbox_writer=broken))
    try:
        body = body_of(snapshot_event("evt_unlucky"))
        status, answer = post(client, body, sign(body, PLATFORM_SECRET))
    finally:
        set_runtime(app, healthy)
        client.portal.call(broken.close)  # type: ignore[union-attr]
        client.portal.call(down.dispose)  # type: ignore[union-attr]
    assert (status, answer) == (503, {"error": "temporarily unavailable"})
    assert deliveries(client, "platform", "unavailable") == 1
    assert rows(client) == []
    # Stripe retries: the same delivery now lands.
    assert post(client, body, sign(body, PLATFORM_SECRET)) == (200, {"status": "stored"})


def test_webhook_accepted_deliveries_are_counted_in_a_line_not_a_line_each(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = [body_of(snapshot_event(f"evt_log_{n}")) for n in range(3)]
    app = create_app(settings_for(database_url))
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        for body in [*bodies, bodies[0]]:
            assert post(client, body, sign(body, PLATFORM_SECRET))[0] == 200
    # Told at once after a quiet spell, then at most every 10 s; the rest when the app stops.
    lines = [r.getMessage() for r in caplog.records if "webhook deliveries over" in r.getMessage()]
    counted: dict[str, int] = {}
    for line in lines:
        for part in line.split("platform ", 1)[1].split():
            outcome, _, count = part.partition("=")
            counted[outcome] = counted.get(outcome, 0) + int(count)
    assert counted == {"stored": 3, "duplicate": 1}
    assert 1 <= len(lines) <= 2
    logged = caplog.text
    assert "evt_log_" not in logged and "POST /webhooks" not in logged


def test_webhook_other_methods_are_answered_as_by_any_route(client: TestClient) -> None:
    response = client.get(PLATFORM_URL)
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    assert rows(client) == []


def test_requests_other_than_deliveries_get_an_access_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="handlers.access"):
        assert client.get("/healthz").status_code == 200
        assert client.get("/nowhere").status_code == 404
    assert [r.getMessage().rsplit(" ", 1)[0] for r in caplog.records] == [
        "GET /healthz 200",
        "GET /nowhere 404",
    ]
