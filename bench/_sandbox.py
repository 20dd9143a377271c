"""The sandbox as the payout benchmark runs it: its own process, no access log, and every
request counted by method and path (`GET /_bench/counts`), so the benchmark can see how many
balance reads and transfer creates Stripe was asked for. The counting wraps the app from
outside: the sandbox itself is unchanged."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import uvicorn

from stripe_sandbox import create_app

Scope = dict[str, Any]


class Counting:
    """ASGI middleware: count each HTTP request as "METHOD /path"; answer the counts."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/_bench/counts":
                body = json.dumps(self.counts).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            self.counts[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    uvicorn.run(
        Counting(create_app(seed=args.seed)),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )
