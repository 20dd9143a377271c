"""Errors the core raises for callers to turn into answers (HTTP, CLI) without tracebacks."""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error the core raises on purpose. `code` is stable for API clients."""

    code = "reconciler_error"


class InvalidAmount(ReconcilerError):
    code = "invalid_amount"


class UnknownCurrency(ReconcilerError):
    code = "unknown_currency"


class IllegalTransition(ReconcilerError):
    code = "illegal_transition"


class NotFound(ReconcilerError):
    code = "not_found"


class InsufficientBalance(ReconcilerError):
    code = "insufficient_balance"


class RefundExceedsPayment(ReconcilerError):
    code = "refund_exceeds_payment"


class UnbalancedEntry(ReconcilerError):
    code = "unbalanced_entry"


class SchemaNotCurrent(ReconcilerError):
    """The database schema is not the one this code was written for."""

    code = "schema_not_current"


class AccountCannotReceive(ReconcilerError):
    """The merchant's connected account cannot take this money (missing or not enabled)."""

    code = "account_cannot_receive"
