"""A stateful local Stripe for tests, benchmarks and the zero-config demo.

The real stripe SDK talks to it over HTTP (`StripeClient(key, base_addresses={"api": url})`).
It imports nothing from `reconciler`, `handlers` or `scheduler`.
"""

from __future__ import annotations

from .app import create_app
from .clock import SandboxClock
from .delivery import sign
from .server import RunningSandbox, run_sandbox, run_sandbox_sync, serve
from .settings import API_VERSION, SandboxSettings

__all__ = [
    "API_VERSION",
    "RunningSandbox",
    "SandboxClock",
    "SandboxSettings",
    "create_app",
    "run_sandbox",
    "run_sandbox_sync",
    "serve",
    "sign",
]
