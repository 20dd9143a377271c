from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.db.schema import code_head


@pytest.fixture
def empty_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    path = tmp_path / "var" / "reconciler.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    return path


def test_migrate_creates_the_schema(empty_sqlite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert f"is at schema {code_head()}" in capsys.readouterr().out
    assert empty_sqlite.exists()
    assert main(["migrate"]) == 0  # again: nothing to do, no error


def test_serve_refuses_an_unmigrated_database_with_a_message(
    empty_sqlite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "run `reconciler migrate`" in err
    assert "Traceback" not in err


def test_bad_configuration_is_one_clear_line(
    empty_sqlite: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "eighty")
    assert main(["migrate"]) == 2
    message = capsys.readouterr().err.strip()
    assert message == "reconciler: PORT must be a whole number, got 'eighty'"
