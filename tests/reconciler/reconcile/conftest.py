"""Reconcile runs are driven here as the API drives them: the service in-process, on the
sandbox (`api`); `worker_api` is the same service with its inbox worker on, as a `reconciler
worker` instance runs, declaring the jobs that write the ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from handlers.app import create_app
from reconciler.config import Secret, Settings
from stripe_sandbox import run_sandbox_sync
from tests.handlers.api.conftest import API_KEY, Api, api
from tests.stripe_world import TEST_RATE_BURST, TEST_RATE_LIMIT

__all__ = ["api", "worker_api"]


@pytest.fixture
def worker_api(database_url: str) -> Iterator[Api]:
    with run_sandbox_sync(seed=3) as sandbox:
        settings = Settings(
            database_url=database_url,
            stripe_api_key=Secret(API_KEY),
            stripe_api_base=sandbox.url,
            stripe_rate_limit=TEST_RATE_LIMIT,
            stripe_rate_burst=TEST_RATE_BURST,
            scheduler_enabled=False,
        )
        with TestClient(create_app(settings)) as client:
            yield Api(client, sandbox.url)
