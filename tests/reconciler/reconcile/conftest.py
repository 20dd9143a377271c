"""Reconcile runs are driven here as the API drives them: the service in-process, on the
sandbox (`api`); `worker_api` is the same service with its inbox worker on, as a `reconciler
worker` instance runs, declaring the jobs that write the ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.handlers.api.conftest import Api, api, serving_api

__all__ = ["api", "worker_api"]


@pytest.fixture
def worker_api(database_url: str) -> Iterator[Api]:
    with serving_api(database_url, scheduler_enabled=False) as served:
        yield served
