"""`/v1/balance` and `/v1/balance_transactions`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .forms import check_known, get_str
from .money import balance_object
from .state import Sandbox
from .store import paginate

if TYPE_CHECKING:
    from .api import Call

Obj = dict[str, Any]


def retrieve_balance(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return balance_object(sb)


def list_transactions(sb: Sandbox, call: Call) -> Obj:
    params = call.params
    check_known(
        params,
        {
            "created",
            "currency",
            "ending_before",
            "limit",
            "payout",
            "source",
            "starting_after",
            "type",
        },
    )
    rows = sb.store.newest_first("balance_transaction")
    payout = get_str(params, "payout")
    if payout is not None:
        sb.store.get("payout", payout, param="payout")
        paid = sb.private.payout_transactions.get(payout, set())
        rows = [t for t in rows if t["id"] in paid]
    for name in ("type", "source", "currency"):
        wanted = get_str(params, name)
        if wanted is not None:
            rows = [t for t in rows if t[name] == wanted]
    return paginate(rows, params, "/v1/balance_transactions")


def retrieve_transaction(sb: Sandbox, call: Call) -> Obj:
    check_known(call.params, set())
    return sb.store.get("balance_transaction", call.path["id"])


ROUTES = [
    ("GET", "/v1/balance", retrieve_balance, "balance"),
    ("GET", "/v1/balance_transactions", list_transactions, "list:balance_transaction"),
    ("GET", "/v1/balance_transactions/{id}", retrieve_transaction, "balance_transaction"),
]
