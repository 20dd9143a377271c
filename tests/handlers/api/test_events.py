"""`/api/v1/events`: the inbox for operators, and replaying a failed or dead event over HTTP
(the same core function as `reconciler events replay`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reconciler.inbox import claims
from reconciler.types import utcnow
from tests.handlers.api.conftest import Api
from tests.reconciler.inbox.rows import POLICY, insert


def seed(api: Api) -> None:
    """evt_dead failed its one try; evt_failed failed once of three; evt_fresh waits."""

    async def work() -> None:
        db, now = api.runtime.database, utcnow()
        await insert(db, now - timedelta(minutes=2), "evt_dead")
        await insert(db, now - timedelta(minutes=1), "evt_failed")
        await insert(db, now, "evt_fresh")
        for policy in (replace(POLICY, max_attempts=1), POLICY):
            [event] = await claims.claim_due(db, now, limit=1, policy=policy)
            async with db.write() as conn:
                await claims.mark_failed(conn, event, "KeyError: 'charge'", now, policy)

    api.run(work)


def test_events_are_listed_by_status_and_paged(api: Api) -> None:
    seed(api)
    operator = api.token("operator")
    status, page = api.call("GET", "/events", operator)
    assert status == 200, page
    assert [e["stripe_event_id"] for e in page["data"]] == ["evt_fresh", "evt_failed", "evt_dead"]
    _, dead = api.call("GET", "/events", operator, params={"status": "dead"})
    [row] = dead["data"]
    assert (row["stripe_event_id"], row["type"], row["status"], row["attempts"]) == (
        "evt_dead",
        "charge.succeeded",
        "dead",
        1,
    )
    assert row["last_error"] == "KeyError: 'charge'" and row["endpoint"] == "platform"
    _, first = api.call("GET", "/events", operator, params={"limit": 2})
    assert first["has_more"] is True
    _, rest = api.call(
        "GET", "/events", operator, params={"limit": 2, "starting_after": first["data"][1]["id"]}
    )
    assert ([e["stripe_event_id"] for e in rest["data"]], rest["has_more"]) == (["evt_dead"], False)


def test_one_event_by_stripe_id_or_row_id(api: Api) -> None:
    seed(api)
    operator = api.token("operator")
    status, found = api.call("GET", "/events/evt_failed", operator)
    assert (status, found["status"], found["attempts"]) == (200, "failed", 1)
    assert api.call("GET", f"/events/{found['id']}", operator)[1] == found
    for missing in ("evt_missing", "99999", "9" * 30, "²"):
        status, refused = api.call("GET", f"/events/{missing}", operator)
        assert (status, refused["error"]["code"]) == (404, "not_found"), missing


def test_a_dead_or_failed_event_is_replayed_and_others_refused(api: Api) -> None:
    seed(api)
    operator = api.token("operator")
    for stripe_id in ("evt_dead", "evt_failed"):
        status, replayed = api.call("POST", f"/events/{stripe_id}/replay", operator)
        assert status == 200, replayed
        assert (replayed["status"], replayed["attempts"]) == ("received", 0)
    status, refused = api.call("POST", "/events/evt_fresh/replay", operator)
    assert (status, refused["error"]["code"]) == (409, "replay_refused")
    assert "only failed or dead events" in refused["error"]["message"]
    status, refused = api.call("POST", "/events/evt_dead/replay", operator)
    assert (status, refused["error"]["code"]) == (409, "replay_refused")
    status, refused = api.call("POST", "/events/evt_missing/replay", operator)
    assert (status, refused["error"]["code"]) == (404, "not_found")
