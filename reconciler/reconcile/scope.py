"""What a reconcile run looks at: one Stripe object, one merchant, a time window, or everything.

A scope is stored with its run (`reconcile_runs.scope`, JSON) and read back the same, so the
API, the CLI, the nightly job and a resumed run all describe it one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.errors import ReconcilerError

# The Stripe ids a one-object run accepts, by prefix, and what each names.
OBJECT_PREFIXES = {
    "pi_": "payment_intent",
    "ch_": "charge",
    "re_": "refund",
    "tr_": "transfer",
    "acct_": "account",
}


class InvalidScope(ReconcilerError):
    code = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Scope:
    """Everything when all are None. `object_id` stands alone; `account_id` (our merchant id)
    and the window `[since, until)` (when the Stripe object was created) may be combined."""

    object_id: str | None = None
    account_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.object_id is not None:
            if self.object_type is None:
                raise InvalidScope(
                    f"object must be a Stripe id starting {', '.join(OBJECT_PREFIXES)}; "
                    f"got {self.object_id!r}",
                    "scope.object",
                )
            if (self.account_id, self.since, self.until) != (None, None, None):
                raise InvalidScope("a one-object scope takes no account or window", "scope.object")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidScope(f"{name} needs a time zone (e.g. ...Z)", f"scope.{name}")
        if self.since and self.until and self.since >= self.until:
            raise InvalidScope("since must be before until", "scope.until")

    @property
    def object_type(self) -> str | None:
        if self.object_id is None:
            return None
        return next(
            (kind for prefix, kind in OBJECT_PREFIXES.items() if self.object_id.startswith(prefix)),
            None,
        )

    @property
    def everything(self) -> bool:
        return self == Scope()

    def describe(self) -> str:
        if self.object_id is not None:
            return f"{self.object_type} {self.object_id}"
        parts = []
        if self.account_id is not None:
            parts.append(f"merchant {self.account_id}")
        if self.since is not None or self.until is not None:
            since = self.since.isoformat() if self.since else "the start"
            until = self.until.isoformat() if self.until else "now"
            parts.append(f"created from {since} to {until}")
        return ", ".join(parts) or "everything"

    def to_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        if self.object_id is not None:
            stored["object"] = self.object_id
        if self.account_id is not None:
            stored["account_id"] = self.account_id
        if self.since is not None:
            stored["since"] = self.since.isoformat()
        if self.until is not None:
            stored["until"] = self.until.isoformat()
        return stored

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Scope:
        return cls(
            object_id=stored.get("object"),
            account_id=stored.get("account_id"),
            since=_moment(stored.get("since")),
            until=_moment(stored.get("until")),
        )


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
