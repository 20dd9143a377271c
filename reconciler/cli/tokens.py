"""`reconciler tokens`: create, list and revoke API tokens."""

from __future__ import annotations

import argparse

from reconciler.config import Settings
from reconciler.db.schema import require_current_schema
from reconciler.runtime import open_database
from reconciler.tokens import ROLES, TokenRecord, create_token, list_tokens, revoke_token
from reconciler.types import utcnow


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = commands.add_parser("tokens", help="create, list and revoke API tokens")
    actions = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token; it is printed once, last")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--account", type=int, help="the merchant account (merchant tokens)")
    create.add_argument("--name", default="", help="what the token is for")
    actions.add_parser("list", help="every token, revoked ones included (never the token)")
    revoke = actions.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", type=int, help="the token's id (from `tokens list`)")


def _line(record: TokenRecord) -> str:
    account = "-" if record.merchant_id is None else str(record.merchant_id)
    revoked = record.revoked_at.isoformat() if record.revoked_at else "-"
    return (
        f"{record.id:>4}  {record.role:<8}  {account:>7}  {record.display:<14}  "
        f"{record.created_at.isoformat()}  {revoked}  {record.name}"
    )


HEADER = f"{'id':>4}  {'role':<8}  {'account':>7}  {'token':<14}  created  revoked  name"


async def run(settings: Settings, args: argparse.Namespace) -> str:
    async with open_database(settings) as db:
        await require_current_schema(db)
        if args.tokens_command == "list":
            async with db.read() as conn:
                records = await list_tokens(conn)
            return "\n".join([HEADER, *map(_line, records)]) if records else "no tokens"
        async with db.write() as conn:
            if args.tokens_command == "revoke":
                record = await revoke_token(conn, args.id, now=utcnow())
                return f"token {record.id} ({record.name}) revoked"
            record, token = await create_token(
                conn, role=args.role, merchant_id=args.account, name=args.name, now=utcnow()
            )
    # The token alone on the last line, so a script can take it with `tail -1`.
    return (
        f"created token {record.id} ({record.role}, {record.name}); it is not shown again:\n{token}"
    )
