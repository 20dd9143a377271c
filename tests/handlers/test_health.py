from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from handlers.app import create_app
from reconciler.config import Settings
from reconciler.errors import SchemaNotCurrent


def test_health_and_readiness_on_a_migrated_database(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})


def test_readiness_fails_when_the_database_goes_away(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url))) as client:
        database = client.app.state.database  # type: ignore[attr-defined]

        class Broken:
            def read(self) -> object:
                raise ConnectionRefusedError("database down")

        client.app.state.database = Broken()  # type: ignore[attr-defined]
        ready = client.get("/readyz")
        client.app.state.database = database  # type: ignore[attr-defined]
    assert (ready.status_code, ready.json()["status"]) == (503, "unavailable")


def test_the_app_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaNotCurrent), TestClient(create_app(settings)):
        pass
