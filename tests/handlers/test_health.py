from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from handlers._runtime import app_runtime, set_runtime
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
        app: Starlette = client.app  # type: ignore[assignment]
        runtime = app_runtime(app)

        class Broken:
            def read(self) -> object:
                raise ConnectionRefusedError("database down")

        set_runtime(app, replace(runtime, database=Broken()))  # type: ignore[arg-type]
        ready = client.get("/readyz")
        set_runtime(app, runtime)
    assert (ready.status_code, ready.json()["status"]) == (503, "unavailable")


def test_the_app_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SchemaNotCurrent), TestClient(create_app(settings)):
        pass
