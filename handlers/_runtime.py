"""The one way handlers reach the running service's resources."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request

from reconciler.runtime import Runtime


def set_runtime(app: Starlette, runtime: Runtime | None) -> None:
    """Hand the app its resources (the lifespan does, on start), or take them back."""
    app.state.runtime = runtime


def app_runtime(app: Starlette) -> Runtime:
    """The resources of a running app; a clear error if its lifespan has not started."""
    runtime = getattr(app.state, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the app is not running: its lifespan has not started")
    return runtime


def runtime_of(request: Request) -> Runtime:
    return app_runtime(request.app)
