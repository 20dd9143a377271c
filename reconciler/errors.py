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
    """The merchant's internal balance does not cover it."""

    code = "insufficient_merchant_balance"


class InsufficientPlatformBalance(ReconcilerError):
    """The platform's available Stripe balance, less what is accepted and not yet executed,
    does not cover it."""

    code = "insufficient_platform_balance"


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


class InvalidRequest(ReconcilerError):
    """What was asked cannot be done as asked; `param` names the input at fault, if one is."""

    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ConnectNotReady(ReconcilerError):
    """The merchant's connected account cannot do this yet (not linked, not onboarded)."""

    code = "connect_not_ready"


class IdempotencyConflict(ReconcilerError):
    """An Idempotency-Key used before for a different request."""

    code = "idempotency_conflict"


class NotRefundable(ReconcilerError):
    """The payment cannot be refunded (not paid yet, refunded already, or converted)."""

    code = "not_refundable"
