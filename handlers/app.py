"""The Starlette application factory: routes, and the lifespan that owns the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from handlers.health import healthz, readyz
from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.db.schema import require_current_schema


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the service. Settings default to the environment; the database must be migrated."""
    settings = settings or Settings.from_environ()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        try:
            await require_current_schema(database)
            app.state.database = database
            yield
        finally:
            await database.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app
