"""The API in-process, on a migrated database, with tokens made as the CLI makes them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import stripe
from starlette.testclient import TestClient

from handlers._runtime import app_runtime
from handlers.app import create_app
from reconciler.config import Secret, Settings
from reconciler.runtime import Runtime
from reconciler.tokens import create_token
from reconciler.types import utcnow
from stripe_sandbox import run_sandbox_sync
from tests.stripe_world import TEST_RATE_BURST, TEST_RATE_LIMIT

API_KEY = "sk_test_api_tests"


@dataclass
class Api:
    client: TestClient
    sandbox_url: str

    @property
    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(API_KEY, base_addresses={"api": self.sandbox_url})

    def run(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run `work` on the app's own event loop (where its database connections live)."""
        return self.client.portal.call(work)  # type: ignore[union-attr]

    @property
    def runtime(self) -> Runtime:
        return app_runtime(self.client.app)  # type: ignore[arg-type]

    def token(self, role: str, account: int | None = None) -> str:
        async def make() -> str:
            async with self.runtime.database.write() as conn:
                _, token = await create_token(conn, role=role, merchant_id=account, now=utcnow())
            return token

        return self.client.portal.call(make)  # type: ignore[union-attr]

    def call(
        self, method: str, path: str, token: str | None, body: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        response = self.client.request(
            method, "/api/v1" + path, json=body, headers=headers, **kwargs
        )
        return response.status_code, response.json()

    def account(self, operator: str, name: str = "Acme") -> int:
        status, body = self.call(
            "POST", "/accounts", operator, {"name": name, "email": f"{name.lower()}@example.com"}
        )
        assert status == 201, body
        return int(body["id"])


@contextmanager
def serving_api(database_url: str, **settings: Any) -> Iterator[Api]:
    """The app in-process on a fresh sandbox, with these settings over the tests' own."""
    with run_sandbox_sync(seed=3) as sandbox:
        configured = Settings(
            database_url=database_url,
            stripe_api_key=Secret(API_KEY),
            stripe_api_base=sandbox.url,
            stripe_rate_limit=TEST_RATE_LIMIT,
            stripe_rate_burst=TEST_RATE_BURST,
            **settings,
        )
        with TestClient(create_app(configured)) as client:
            yield Api(client, sandbox.url)


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with serving_api(database_url, inbox_worker_enabled=False) as served:
        yield served
