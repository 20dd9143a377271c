"""The API against its own OpenAPI document, property-based (schemathesis): for whatever the
document says a client may send, and plenty it says they may not, no 5xx, and every answer is
one the document describes (status, content type, body)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from handlers._runtime import app_runtime
from handlers.api.routes import DOCUMENT
from handlers.app import create_app
from reconciler.config import Secret, Settings
from reconciler.db.engine import Database
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import ledger_session
from reconciler.tokens import create_token
from reconciler.types import utcnow
from stripe_sandbox import run_sandbox_sync
from stripe_sandbox.server import ServerThread
from tests.fake_reconciler import FakeReconciler, install
from tests.handlers.api.conftest import API_KEY
from tests.stripe_world import TEST_RATE_BURST, TEST_RATE_LIMIT

schema = schemathesis.openapi.from_dict(DOCUMENT)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Caller:
    base_url: str
    token: str


async def _seeded(url: str) -> str:
    """Something for the routes to find (account 1), and an admin's token."""
    db = Database(url)
    try:
        async with ledger_session(db) as tx:
            await create_merchant(tx, name="Acme", email="ops@acme.test", now=utcnow())
        async with db.write() as conn:
            _, token = await create_token(conn, role="admin", now=utcnow())
        return token
    finally:
        await db.dispose()


@pytest.fixture
def caller(database_url: str) -> Iterator[Caller]:
    """The service on loopback, with a sandbox Stripe, as a client reaches it."""
    with run_sandbox_sync(seed=9) as sandbox:
        token = asyncio.run(_seeded(database_url))
        settings = Settings(
            database_url=database_url,
            stripe_api_key=Secret(API_KEY),
            stripe_api_base=sandbox.url,
            stripe_rate_limit=TEST_RATE_LIMIT,
            stripe_rate_burst=TEST_RATE_BURST,
            inbox_worker_enabled=False,
        )
        server = ServerThread()
        app = create_app(settings)
        server.start(app)
        # POST /reconcile starts runs on the TEST FAKE engine (it only records them).
        install(app_runtime(app), FakeReconciler())
        try:
            yield Caller(server.url, token)
        finally:
            server.stop()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_document(case: schemathesis.Case, caller: Caller) -> None:
    headers = {"authorization": f"Bearer {caller.token}", "idempotency-key": uuid.uuid4().hex}
    case.call_and_validate(base_url=caller.base_url, headers=headers, checks=CHECKS)
