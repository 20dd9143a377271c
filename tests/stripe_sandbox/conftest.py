"""Fixtures for the sandbox tests: a sandbox per test, real stripe SDK clients, a receiver."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_sandbox import RunningSandbox, SandboxClock, SandboxSettings, run_sandbox_sync

from .factories import API_KEY, START, Control, Received, Receiver


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    settings = SandboxSettings(delivery_retry_base=10.0, delivery_timeout=5.0)
    with run_sandbox_sync(
        seed=1234, clock=SandboxClock(START, frozen=True), settings=settings
    ) as running:
        yield running


@pytest.fixture
def control(sandbox: RunningSandbox) -> Iterator[Control]:
    ctl = Control(sandbox.url)
    yield ctl
    ctl.close()


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[stripe.StripeClient]:
    http_client = stripe.RequestsClient(timeout=10)
    yield stripe.StripeClient(
        API_KEY,
        base_addresses={"api": sandbox.url},
        http_client=http_client,
        max_network_retries=0,
    )
    http_client.close()


@pytest.fixture
async def aclient(sandbox: RunningSandbox) -> AsyncIterator[stripe.StripeClient]:
    http_client = stripe.HTTPXClient(timeout=10)
    yield stripe.StripeClient(
        API_KEY,
        base_addresses={"api": sandbox.url},
        http_client=http_client,
        max_network_retries=0,
    )
    await http_client.close_async()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with state.lock:
                state.received.append(
                    Received(self.path, body, self.headers.get("Stripe-Signature", ""))
                )
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()
