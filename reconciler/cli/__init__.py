"""The `reconciler` command, and the composition root: the one module of `reconciler/` that
wires the HTTP app, the scheduler and the sandbox together. The resources themselves are
built by `reconciler.runtime`, for every command alike."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import replace

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from reconciler.cli import reconcile, tokens
from reconciler.cli.events_table import format_events
from reconciler.cli.worker import run_worker
from reconciler.config import ConfigError, Secret, Settings
from reconciler.db.schema import code_head, migrate, require_current_schema
from reconciler.errors import ReconcilerError
from reconciler.inbox.events import STATUSES
from reconciler.inbox.queries import list_events, replay
from reconciler.runtime import open_database, open_gateway
from reconciler.types import utcnow

log = logging.getLogger("reconciler")
SWITCH_INTERVAL_SECONDS = 0.0005


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler", description="ICPay's Stripe reconciler. Configuration: environment."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    commands.add_parser(
        "worker",
        help="run the inbox worker, the payout executor and the scheduled jobs, without HTTP",
    )
    commands.add_parser("migrate", help="apply database migrations up to this code's schema")
    events = commands.add_parser("events", help="look at and replay stored webhook events")
    event_commands = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    listing = event_commands.add_parser("list", help="list inbox events, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only events in this status")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    replay = event_commands.add_parser("replay", help="retry a failed or dead event now")
    replay.add_argument("event", help="Stripe event id (evt_...) or inbox row id")
    reconcile.add_parser(commands)
    tokens.add_parser(commands)
    sandbox = commands.add_parser("sandbox", help="run the local Stripe sandbox")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=12111)
    sandbox.add_argument("--seed", type=int, default=None, help="make ids deterministic")
    return parser


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _migrate(settings: Settings) -> str:
    async with open_database(settings) as db:
        await migrate(db)
        await require_current_schema(db)
    return f"database {_safe_url(settings.database_url)} is at schema {code_head()}"


async def _check_schema(settings: Settings) -> None:
    async with open_database(settings) as db:
        await require_current_schema(db)


class DatabaseUnavailable(ReconcilerError):
    code = "database_unavailable"


async def _guarded(command: Awaitable[str]) -> str:
    """A command's answer, or a one-line error when the database cannot be reached."""
    try:
        return await command
    except (SQLAlchemyError, OSError) as error:
        raise DatabaseUnavailable(f"database unavailable: {type(error).__name__}") from None


async def _events(settings: Settings, args: argparse.Namespace) -> str:
    return await _guarded(_events_command(settings, args))


async def _events_command(settings: Settings, args: argparse.Namespace) -> str:
    async with open_database(settings) as db:
        await require_current_schema(db)
        if args.events_command == "replay":
            async with db.write() as conn:
                row = await replay(conn, args.event, utcnow())
            return f"{row.stripe_event_id} ({row.event_type}) queued for replay"
        async with db.read() as conn:
            rows = await list_events(conn, status=args.status, limit=max(args.limit, 1))
        return format_events(rows)


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from handlers.app import create_app

    asyncio.run(_check_schema(settings))  # refuse early, with a message, not a traceback
    host = host or settings.host
    port = settings.port if port is None else port
    with contextlib.ExitStack() as stack:
        if settings.uses_sandbox:
            settings = stack.enter_context(_local_stripe(settings, f"http://{host}:{port}"))
        app = create_app(settings)
        # Everything imported so far (the stripe SDK alone is a great many objects) lives as
        # long as the process: set it aside from the cyclic collector, whose full passes over
        # it otherwise pause every request in flight (p99 ~90 ms under load; ~20 ms without).
        gc.freeze()
        # Database drivers work in threads (aiosqlite, the inbox's SQLite writer) that need the
        # interpreter lock for a moment between statements; by default a busy event loop keeps
        # it up to 5 ms each time, and every webhook waits on those handoffs.
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        # uvicorn's access line per request is off: the app logs its own (`handlers.access_log`,
        # and for webhook deliveries a line counting them, `handlers._delivery_log`).
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level, access_log=False)


@contextlib.contextmanager
def _local_stripe(settings: Settings, service_url: str) -> Iterator[Settings]:
    """Run the sandbox beside the service and point the service at it: `make run` with no
    Stripe keys gives a working system, webhooks included. Its state lives in memory."""
    from stripe_sandbox import create_app as create_sandbox
    from stripe_sandbox.server import ServerThread

    server = ServerThread(settings.host, settings.sandbox_port)
    server.start(create_sandbox())
    try:
        secrets = asyncio.run(_register_webhooks(settings, server.url, service_url))
        log.warning(
            "no Stripe configured: using the local Stripe sandbox at %s "
            "(set STRIPE_API_KEY to use Stripe; see docs/sandbox.md)",
            server.url,
        )
        yield replace(
            settings,
            stripe_api_base=server.url,
            webhook_secrets=(secrets[0],),
            connect_webhook_secrets=(secrets[1],),
        )
    finally:
        server.stop()


async def _register_webhooks(settings: Settings, api_base: str, service_url: str) -> list[Secret]:
    async with open_gateway(settings, api_base=api_base) as gateway:
        secrets = []
        for path, connect in (("/webhooks/stripe", False), ("/webhooks/stripe/connect", True)):
            endpoint = await gateway.create_webhook_endpoint(service_url + path, connect=connect)
            secrets.append(Secret(endpoint["secret"]))
        return secrets


def _sandbox(host: str, port: int, seed: int | None) -> None:
    from stripe_sandbox.server import serve

    serve(host=host, port=port, seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.from_environ()
        if args.command == "migrate":
            print(asyncio.run(_migrate(settings)))
        elif args.command == "serve":
            _serve(settings, args.host, args.port)
        elif args.command == "worker":
            asyncio.run(_check_schema(settings))
            asyncio.run(run_worker(settings))
        elif args.command == "events":
            print(asyncio.run(_events(settings, args)))
        elif args.command == "reconcile":
            return reconcile.main(settings, args)
        elif args.command == "tokens":
            print(asyncio.run(_guarded(tokens.run(settings, args))))
        elif args.command == "sandbox":
            _sandbox(args.host, args.port, args.seed)
    except (ConfigError, ReconcilerError) as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return 2
    return 0
