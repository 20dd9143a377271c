"""Liveness and readiness: is the process up, and can it reach its database."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from handlers._runtime import runtime_of

READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    database = runtime_of(request).database
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS), database.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not ready"; say which, never a traceback
        return JSONResponse(
            {"status": "unavailable", "database": type(error).__name__}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok"})
