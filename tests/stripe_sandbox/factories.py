"""Shared factories for the sandbox tests: control-surface client, receiver, payments."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import stripe

START = 1_767_225_600  # 2026-01-01T00:00:00Z
API_KEY = "sk_test_sandbox_0000000000"


class Control:
    """The `/_sandbox/` control surface, over HTTP as any client would use it."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10)

    def close(self) -> None:
        self._http.close()

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.post(f"/_sandbox{path}", json=body or {})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, raw: bytes = b""
    ) -> httpx.Response:
        """Any answer, errors included: a JSON `body`, or `raw` bytes sent as they are."""
        if body is not None:
            raw = json.dumps(body).encode()
        return self._http.request(method, f"/_sandbox{path}", content=raw)

    def get(self, path: str) -> dict[str, Any]:
        response = self._http.get(f"/_sandbox{path}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def advance(self, seconds: float) -> dict[str, Any]:
        return self.post("/clock/advance", {"seconds": seconds})

    def flush(self, everything: bool = False) -> dict[str, Any]:
        return self.post("/deliveries/flush", {"all": everything})

    def onboard(self, account_id: str) -> dict[str, Any]:
        return self.post(f"/accounts/{account_id}/onboarding")

    def fault(self, target: str, **spec: Any) -> dict[str, Any]:
        return self.post(f"/faults/{target}", spec)


@dataclass
class Received:
    path: str
    body: bytes
    signature: str

    @property
    def event(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class Receiver:
    """A webhook receiver on a real port; answers `statuses` in turn, then 200."""

    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def types(self, path: str | None = None) -> list[str]:
        return [r.event["type"] for r in self.received if path is None or r.path == path]


def pay(
    client: stripe.StripeClient, amount: int = 10_000, card: str = "pm_card_visa", **extra: Any
) -> stripe.PaymentIntent:
    """A confirmed card PaymentIntent."""
    params: dict[str, Any] = {
        "amount": amount,
        "currency": "usd",
        "payment_method": card,
        "payment_method_types": ["card"],
        "confirm": True,
        **extra,
    }
    return client.v1.payment_intents.create(params=params)  # type: ignore[arg-type]


def merchant(client: stripe.StripeClient, control: Control) -> stripe.Account:
    """An onboarded Express account that can receive transfers."""
    account = client.v1.accounts.create(params={"type": "express", "country": "US"})
    control.onboard(account.id)
    return account
