from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.inbox import claims, inserts
from reconciler.inbox.events import InboxPolicy, NewEvent
from reconciler.types import utcnow

POLICY = replace(InboxPolicy.from_settings(Settings()), max_attempts=1)


async def failed_and_fresh_events(url: str) -> None:
    db = Database(url)
    try:
        now = utcnow()
        async with db.write() as conn:
            await inserts.insert_events(
                conn,
                [
                    NewEvent("evt_broken", "platform", "charge.refunded", False, None, 1, "{}"),
                    NewEvent("evt_fresh", "connect", "account.updated", False, "acct_1", 1, "{}"),
                ],
                now,
            )
        [event] = await claims.claim_due(db, now, limit=1, policy=POLICY)
        async with db.write() as conn:
            error = "KeyError: 'charge'\n  with a second line"
            await claims.mark_failed(conn, event, error, now - timedelta(hours=1), POLICY)
    finally:
        await db.dispose()


@pytest.fixture
def seeded(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    asyncio.run(failed_and_fresh_events(database_url))
    return database_url


def test_cli_events_list_by_status(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "list", "--status", "dead"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID", "STRIPE", "EVENT", "TYPE", "ENDPOINT", "STATUS", "TRIES", "RECEIVED", "ERROR"
    ]  # fmt: skip
    assert len(lines) == 2
    assert lines[1].split()[1:6] == ["evt_broken", "charge.refunded", "platform", "dead", "1"]
    assert lines[1].endswith("KeyError: 'charge' with a second line")


def test_cli_events_list_all_and_empty(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "list"]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == [
        "evt_fresh",
        "evt_broken",
    ]
    assert main(["events", "list", "--status", "failed"]) == 0
    assert capsys.readouterr().out.strip() == "no events"


def test_cli_events_replay(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "replay", "evt_broken"]) == 0
    assert capsys.readouterr().out.strip() == "evt_broken (charge.refunded) queued for replay"
    assert main(["events", "list", "--status", "received"]) == 0
    assert "evt_broken" in capsys.readouterr().out


def test_cli_events_replay_refusals_are_one_line(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "replay", "evt_fresh"]) == 2
    assert capsys.readouterr().err.strip() == (
        "reconciler: event evt_fresh is received; only failed or dead events can be replayed"
    )
    assert main(["events", "replay", "evt_nope"]) == 2
    assert capsys.readouterr().err.strip() == "reconciler: no inbox event 'evt_nope'"


def test_cli_events_unknown_status_is_a_usage_error(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["events", "list", "--status", "lost"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_cli_events_without_a_database_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert main(["events", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reconciler: database unavailable") and "Traceback" not in err
