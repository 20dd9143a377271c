"""A real `reconciler serve` is killed (SIGKILL) after acknowledging an event and before
applying it; on restart the event is applied exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx

from tests import recording_applier
from tests.processes import free_port, run_cli, serve
from tests.webhook_events import PLATFORM_SECRET, body_of, sign, snapshot_event

ROOT = Path(__file__).resolve().parents[2]


def inbox_status(database: Path, event_id: str) -> str | None:
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT status FROM inbox_events WHERE stripe_event_id = ?", (event_id,)
        ).fetchone()
    conn.close()
    return None if row is None else str(row[0])


def test_crash_after_the_inbox_commit_applies_the_event_once_on_restart(tmp_path: Path) -> None:
    database = tmp_path / "reconciler.db"
    applied = tmp_path / "applied.txt"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "STRIPE_WEBHOOK_SECRETS": PLATFORM_SECRET,
        # A Stripe address (never called: the recording applier makes no Stripe call) keeps
        # `serve` from starting the zero-config sandbox, which brings its own secrets.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "INBOX_APPLIER": recording_applier.SPEC,
        recording_applier.FILE_VARIABLE: str(applied),
        # The service runs in tmp_path: it finds the test seam on the path, from the checkout.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "LOG_LEVEL": "warning",
    }
    run_cli(["migrate"], env, tmp_path)
    port = free_port()
    body = body_of(snapshot_event("evt_crash"))

    # First life: acknowledged and committed, then killed before any worker looked at it.
    with serve({**env, "INBOX_WORKER_ENABLED": "false"}, tmp_path, port) as first:
        answer = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/stripe",
            content=body,
            headers={"stripe-signature": sign(body, PLATFORM_SECRET)},
        )
        assert (answer.status_code, answer.json()) == (200, {"status": "stored"})
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert inbox_status(database, "evt_crash") == "received"
    assert not applied.exists()

    # Second life: the worker finds the row and applies it; a redelivery changes nothing.
    with serve(env, tmp_path, port) as second:
        deadline = time.monotonic() + 10
        while inbox_status(database, "evt_crash") != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        again = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/stripe",
            content=body,
            headers={"stripe-signature": sign(body, PLATFORM_SECRET)},
        )
        assert again.json() == {"status": "duplicate"}
        time.sleep(1.0)  # two poll intervals: time for a wrong second application to show
        second.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal it caught.
        assert second.wait(timeout=15) in (0, -signal.SIGTERM)
    assert inbox_status(database, "evt_crash") == "done"
    assert applied.read_text().splitlines() == ["evt_crash"]
