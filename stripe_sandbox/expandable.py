"""What `expand[]` may name on each object, checked before a call changes anything.

Stripe refuses a bad `expand[]` like any other bad parameter: before the call runs. The
sandbox checks each path against the kind of object the route answers with (field names from
the spec's `x-expandableFields`, limited to what the sandbox stores), so expanding the answer
afterwards cannot fail.
"""

from __future__ import annotations

from .errors import StripeError, invalid_request

# field -> kind of the object its id names, or None for a field that holds an embedded object
# (or is always null here): expanding it changes nothing and nothing below it is expandable;
# `list:<kind>` for an embedded list, whose items expand below `data.` (as
# `charges.data.balance_transaction` did on payment intents before 2022-11-15).
EXPANDABLE: dict[str, dict[str, str | None]] = {
    "payment_intent": {
        "latest_charge": "charge",
        **dict.fromkeys(
            (
                "amount_details",
                "application",
                "automatic_payment_methods",
                "customer",
                "last_payment_error",
                "next_action",
                "on_behalf_of",
                "payment_method_options",
                "processing",
                "review",
                "shipping",
                "transfer_data",
            )
        ),
    },
    "charge": {
        "balance_transaction": "balance_transaction",
        "failure_balance_transaction": "balance_transaction",
        "payment_intent": "payment_intent",
        **dict.fromkeys(
            (
                "application",
                "application_fee",
                "billing_details",
                "customer",
                "fraud_details",
                "on_behalf_of",
                "outcome",
                "payment_method_details",
                "review",
                "shipping",
                "source_transfer",
                "transfer_data",
            )
        ),
    },
    "refund": {
        "balance_transaction": "balance_transaction",
        "charge": "charge",
        "failure_balance_transaction": "balance_transaction",
        "payment_intent": "payment_intent",
        "source_transfer_reversal": None,
        "transfer_reversal": None,
    },
    "transfer": {
        "balance_transaction": "balance_transaction",
        "destination": "account",
        "source_transaction": "charge",
        "reversals": "list:transfer_reversal",
    },
    "transfer_reversal": {
        "balance_transaction": "balance_transaction",
        "transfer": "transfer",
        "source_refund": None,
    },
    # `source` names objects of several kinds: it expands, nothing below it does.
    "balance_transaction": {"source": None, "fee_details": None},
    "account": dict.fromkeys(
        (
            "business_profile",
            "capabilities",
            "controller",
            "external_accounts",
            "future_requirements",
            "requirements",
            "settings",
            "tos_acceptance",
        )
    ),
    "event": {"data": None, "request": None},
    "balance": {"available": None, "connect_reserved": None, "pending": None},
}
MAX_DEPTH = 4


def check_expand(kind: str, paths: list[str]) -> None:
    """Refuse any path that `kind` (or `list:<kind>`, whose paths start `data.`) cannot expand."""
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise invalid_request(
                f"You cannot expand more than {MAX_DEPTH} levels of a property.", param="expand"
            )
        current: str | None = kind
        if kind.startswith("list:"):
            if parts[0] != "data":
                raise _refused(path)
            parts, current = parts[1:], kind.removeprefix("list:")
        if not parts:
            raise _refused(path)
        for part in parts:
            if current is not None and current.startswith("list:"):
                if part != "data":
                    raise _refused(path)
                current = current.removeprefix("list:")
                continue
            fields = EXPANDABLE.get(current or "", {})
            if current is None or part not in fields:
                raise _refused(path)
            current = fields[part]


def _refused(path: str) -> StripeError:
    return invalid_request(f"This property cannot be expanded ({path}).", param="expand")
