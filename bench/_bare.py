"""The bare endpoint the ingest benchmark compares the service with: read the body, answer
200, nothing else. Started with the same uvicorn call as `reconciler serve`."""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def receive(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "stored"})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/webhooks/stripe", receive, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level=args.log_level)
