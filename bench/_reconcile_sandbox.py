"""The sandbox as the reconcile benchmark runs it: its own process, no access log, seeded
before it serves with `--intents` confirmed card payments for one merchant (made by the
sandbox's own `POST /v1/payment_intents` handler, called in-process rather than over HTTP,
so seeding 100k takes seconds, not minutes). The sandbox itself is unchanged."""

from __future__ import annotations

import argparse
import time

import uvicorn

from stripe_sandbox import create_app
from stripe_sandbox.api import Call
from stripe_sandbox.payment_intents import create_intent
from stripe_sandbox.state import RequestContext, Sandbox

API_KEY = "sk_test_bench_reconcile"


def seed(sb: Sandbox, intents: int, merchant_id: int) -> None:
    for n in range(intents):
        sb.request = RequestContext(f"req_seed_{n}", None)
        params = {
            "amount": str(1000 + n % 500),
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "payment_method_types": ["card"],
            "confirm": "true",
            "metadata": {"icpay_account_id": str(merchant_id)},
        }
        create_intent(sb, Call(params, {}, "POST", "http://127.0.0.1/", API_KEY))
    sb.request = None


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--intents", type=int, required=True)
    parser.add_argument("--merchant", type=int, default=1)
    args = parser.parse_args()
    app = create_app(seed=11)
    began = time.monotonic()
    seed(app.state.sandbox, args.intents, args.merchant)
    print(f"seeded {args.intents} in {time.monotonic() - began:.1f}s", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
