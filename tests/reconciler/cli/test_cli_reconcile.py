"""`reconciler reconcile` on the TEST FAKE engine (`tests/fake_reconciler.py`): the plain
progress lines and the summary without a terminal, the exit status cron reads (0 clean,
1 open left, 2 bad input or a failed run), and one-line refusals of bad input."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.cli import reconcile as reconcile_cli
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session
from reconciler.reconcile.progress import ProgressUpdate
from reconciler.reconcile.runs import ReconcileRun, list_runs
from reconciler.reconcile.scope import Scope
from reconciler.runtime import Runtime
from reconciler.types import utcnow
from tests.fake_reconciler import FakeReconciler, Planted, install


@pytest.fixture
def engine(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> FakeReconciler:
    """The command as a user runs it, with the fake in the runtime it opens."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    # Never called: the fake engine reads nothing from Stripe.
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_cli_reconcile")
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9")
    fake = FakeReconciler()
    real = reconcile_cli.open_runtime

    @asynccontextmanager
    async def with_fake(settings: Settings, **kwargs: Any) -> AsyncIterator[Runtime]:
        async with real(settings, **kwargs) as runtime:
            install(runtime, fake)
            yield runtime

    monkeypatch.setattr(reconcile_cli, "open_runtime", with_fake)
    return fake


def runs(url: str) -> list[ReconcileRun]:
    async def read() -> list[ReconcileRun]:
        db = Database(url)
        try:
            async with db.read() as conn:
                return (await list_runs(conn, limit=10))[0]
        finally:
            await db.dispose()

    return asyncio.run(read())


def merchant(url: str) -> int:
    async def make() -> int:
        db = Database(url)
        try:
            async with ledger_session(db) as tx:
                return await create_merchant(tx, name="Acme", email="a@acme.test", now=utcnow())
        finally:
            await db.dispose()

    return asyncio.run(make())


def test_a_clean_run_prints_lines_and_a_summary_and_exits_0(
    engine: FakeReconciler, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[-3:] == [
        "reconcile run 1 (dry run, everything)",
        "payment_intents: examined 3, healed 0, found 0",
        "transfers: examined 6, healed 0, found 0",
    ]
    assert out.splitlines() == [
        "reconcile run 1 (dry run, everything): succeeded in 0.0 s",
        "  examined  6",
        "  healed    0",
        "  found     0",
        "no open discrepancies",
    ]
    [run] = runs(database_url)
    assert (run.started_by, run.dry_run, run.status, engine.ran) == ("cli", True, "succeeded", [1])


def test_open_discrepancies_left_exit_1_with_a_table_by_kind(
    engine: FakeReconciler, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    account = merchant(database_url)
    engine.examined_per_phase, engine.healed = 600, 2
    engine.finds = [
        Planted("unattributed_object", "transfer", "tr_outside", account),
        Planted("amount_mismatch", "payment_intent", "pi_1", account),
        Planted("amount_mismatch", "payment_intent", "pi_2", account),
    ]
    assert main(["reconcile", "--account", str(account), "--since", "2026-11-01"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"reconcile run 1 (heal, merchant {account}, created from 2026-11-01T00:00:00+00:00 "
        "to now): succeeded in 0.0 s",
        "  examined  1,200",
        "  healed        2",
        "  found         3",
        "open discrepancies: 3",
        "  KIND                 OPEN",
        "  amount_mismatch         2",
        "  unattributed_object     1",
        "see them: GET /api/v1/discrepancies?status=open",
    ]
    [run] = runs(database_url)
    assert run.scope == Scope(account_id=account, since=datetime(2026, 11, 1, tzinfo=UTC))
    assert run.dry_run is False


def test_a_failed_run_exits_2_with_its_error(
    engine: FakeReconciler, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.fail_with = "GatewayError: Stripe did not answer\nafter 5 tries"
    assert main(["reconcile", "--object", "pi_123"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "reconcile run 1 (heal, payment_intent pi_123): failed in 0.0 s"
    assert out[1] == "error: GatewayError: Stripe did not answer after 5 tries"


def test_an_engine_that_raises_is_one_line_and_exit_2(
    engine: FakeReconciler, capsys: pytest.CaptureFixture[str]
) -> None:
    engine.raises = RuntimeError("boom")
    assert main(["reconcile"]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == "reconciler: reconcile run 1 failed: RuntimeError: boom"
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--object", "xx_1"], "object must be a Stripe id starting pi_, ch_, re_, tr_, acct_"),
        (["--object", "pi_1", "--account", "1"], "a one-object scope takes no account or window"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "since must be before until"),
        (["--account", "999"], "no account 999"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_queues_nothing(
    engine: FakeReconciler,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert main(["reconcile", *argv]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"reconciler: {message}")
    assert "Traceback" not in err
    assert runs(database_url) == [] and engine.ran == []


def test_a_time_that_is_not_one_is_a_usage_error(
    engine: FakeReconciler, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["reconcile", "--since", "last tuesday"])
    assert exited.value.code == 2
    assert "'last tuesday' is not a time: use ISO 8601" in capsys.readouterr().err


def test_no_stripe_configured_is_refused(
    engine: FakeReconciler, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STRIPE_API_KEY")
    monkeypatch.delenv("STRIPE_API_BASE")
    assert main(["reconcile"]) == 2
    assert "reconciler: no Stripe configured" in capsys.readouterr().err


def test_plain_lines_come_at_each_phase_and_every_few_seconds() -> None:
    err, clock = io.StringIO(), [100.0]
    lines = reconcile_cli._Lines(err, clock=lambda: clock[0])
    for moment, phase, examined in [
        (100.0, "charges", 100),
        (101.0, "charges", 200),  # too soon: no line
        (106.0, "charges", 300),
        (106.5, "refunds", 310),  # a new phase: a line at once
    ]:
        clock[0] = moment
        lines(ProgressUpdate(phase, examined, 0, 1))
    assert err.getvalue().splitlines() == [
        "charges: examined 100, healed 0, found 1",
        "charges: examined 300, healed 0, found 1",
        "refunds: examined 310, healed 0, found 1",
    ]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_live_bar_with_logs_above_it() -> None:
    err = Terminal()
    handler = logging.StreamHandler(err)
    logging.getLogger().addHandler(handler)
    try:
        with reconcile_cli._progress(err) as progress:
            progress(ProgressUpdate("transfers", 1234, 5, 6))
            assert handler.stream is not err  # through the bar's stand-in for stderr
            logging.getLogger("reconciler.gateway").warning("stripe retry 1")
    finally:
        logging.getLogger().removeHandler(handler)
    assert handler.stream is err
    shown = err.getvalue()
    assert "\x1b[" in shown  # drawn, not printed line by line
    assert "transfers" in shown and "examined 1,234  healed 5  found 6" in shown
    assert "stripe retry 1\n" in shown
