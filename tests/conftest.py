from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.db.engine import Database
from tests.databases import REQUIRE_POSTGRES, PostgresServer, SqliteTemplate

# Shared scenario and factory modules assert too: show their diffs like a test's.
pytest.register_assert_rewrite("tests.scenarios", "tests.factories")

_postgres: PostgresServer | None = None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate.build(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    global _postgres
    _postgres = PostgresServer.start()
    yield _postgres
    _postgres.stop()


# Synchronous on purpose: preparing a database runs its own event loop (asyncio.run).
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: SqliteTemplate
) -> str:
    """A migrated, empty database: each test using it runs once per database kind."""
    if request.param == "sqlite":
        return sqlite_template.fresh_url(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if server.url is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"RECONCILER_REQUIRE_POSTGRES=1 but {server.unavailable}")
        pytest.skip(server.unavailable or "PostgreSQL unavailable")
    server.truncate()
    server.tests_run += 1
    return server.url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.hookimpl(trylast=True)  # the last word of the run, under pytest's own summary
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres is None:
        return
    if _postgres.url is None:
        terminalreporter.write_line(
            f"PostgreSQL tests were SKIPPED: {_postgres.unavailable}. "
            "Only SQLite was tested; start PostgreSQL or set TEST_POSTGRES_URL to test both.",
            yellow=True,
            bold=True,
        )
    else:
        terminalreporter.write_line(
            f"PostgreSQL: {_postgres.tests_run} tests ran against a real server.", green=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI must prove both databases ran, not just that nothing failed.
    ran_postgres = _postgres is not None and _postgres.tests_run > 0
    if REQUIRE_POSTGRES and not ran_postgres and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
