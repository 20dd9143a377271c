"""Reconcile runs are driven here as the API drives them: the service in-process, on the
sandbox."""

from __future__ import annotations

from tests.handlers.api.conftest import api

__all__ = ["api"]
