"""Running the sandbox on a real port: standalone, or inside a test process.

    # async tests (pytest-asyncio), or any asyncio code
    async with run_sandbox(seed=7) as sandbox:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": sandbox.url},
                                     http_client=stripe.HTTPXClient())

    # sync code
    with run_sandbox_sync(seed=7) as sandbox:
        httpx.post(f"{sandbox.url}/_sandbox/clock/advance", json={"seconds": 86400 * 3})

The server always runs on its own thread and event loop, so blocking clients (the stripe SDK's
default requests client) and async ones can both call it from the test's thread without
deadlocking. Reach the state through HTTP (the `/_sandbox/` routes); `sandbox.app` is there for
inspection only, since its state belongs to the server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .clock import SandboxClock
from .settings import SandboxSettings
from .state import Sandbox


@dataclass
class RunningSandbox:
    """A sandbox listening on `url` (e.g. `http://127.0.0.1:54321`)."""

    url: str
    app: Starlette

    @property
    def sandbox(self) -> Sandbox:
        state: Sandbox = self.app.state.sandbox
        return state


class ServerThread:
    """Any ASGI app served by uvicorn on its own thread and event loop.

    The socket is bound at construction, so `url` is known before the app exists (a service
    under test must register its webhook URL before it can be built with the secrets).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        assert self._server is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc

    def start(self, app: Starlette, timeout: float = 10.0) -> None:
        """Serve `app`, returning once it accepts connections (its lifespan has run)."""
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"asgi-{self.port}", daemon=True)
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self._socket.close()
                raise RuntimeError("the stripe sandbox failed to start") from self._error
            if waited > timeout:
                raise RuntimeError("the stripe sandbox did not start in time")
            threading.Event().wait(0.01)
            waited += 0.01

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._socket.close()


@contextlib.contextmanager
def run_sandbox_sync(
    seed: int | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: SandboxClock | None = None,
    settings: SandboxSettings | None = None,
) -> Iterator[RunningSandbox]:
    """Serve a fresh sandbox for the duration of the `with` block (port 0: any free port)."""
    app = create_app(seed=seed, clock=clock, settings=settings)
    server = ServerThread(host, port)
    server.start(app)
    try:
        yield RunningSandbox(url=server.url, app=app)
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def run_sandbox(
    seed: int | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: SandboxClock | None = None,
    settings: SandboxSettings | None = None,
) -> AsyncIterator[RunningSandbox]:
    """The async form of `run_sandbox_sync`; startup and shutdown do not block the loop."""
    app = create_app(seed=seed, clock=clock, settings=settings)
    server = ServerThread(host, port)
    await asyncio.to_thread(server.start, app)
    try:
        yield RunningSandbox(url=server.url, app=app)
    finally:
        await asyncio.to_thread(server.stop)


def serve(host: str = "127.0.0.1", port: int = 12111, seed: int | None = None) -> None:
    """Run the sandbox in the foreground until interrupted (the `reconciler sandbox` command)."""
    uvicorn.run(create_app(seed=seed), host=host, port=port, log_level="info")
