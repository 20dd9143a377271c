"""`reconciler tokens`: the token printed once on its own last line, then listed masked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.db.engine import Database
from reconciler.tokens import PREFIX, authenticate


async def principal_of(url: str, token: str) -> tuple[str, int | None] | None:
    db = Database(url)
    try:
        async with db.read() as conn:
            principal = await authenticate(conn, token)
    finally:
        await db.dispose()
    return None if principal is None else (principal.role, principal.merchant_id)


@pytest.fixture
def database(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    return database_url


def test_create_list_revoke(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--role", "admin", "--name", "ops lead"]) == 0
    token = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
    assert token.startswith(PREFIX)
    assert asyncio.run(principal_of(database, token)) == ("admin", None)

    assert main(["tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ops lead" in listing and "admin" in listing and token not in listing

    assert main(["tokens", "revoke", "1"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert asyncio.run(principal_of(database, token)) is None


def test_refusals_are_one_line(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--role", "merchant", "--account", "7"]) == 2
    assert capsys.readouterr().err == "reconciler: no merchant account 7\n"
    assert main(["tokens", "revoke", "3"]) == 2
    assert capsys.readouterr().err == "reconciler: no token 3\n"
