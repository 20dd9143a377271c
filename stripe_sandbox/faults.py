"""Injected faults: what goes wrong with webhook deliveries and API calls, on request."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from typing import Any

from .ids import IdGenerator

DELIVERY_KINDS = ("drop", "duplicate", "reorder", "delay")
API_KINDS = ("rate_limit", "server_error", "hang")


COMMON_FIELDS = frozenset({"kind", "count", "probability", "seconds"})
FIELDS = {
    "deliveries": COMMON_FIELDS | {"copies", "redeliver", "endpoint", "event_type"},
    "api": COMMON_FIELDS | {"path", "method", "execute"},
}
METHODS = ("GET", "POST", "DELETE")


class FaultSpecError(ValueError):
    """A fault asked for through the control surface makes no sense."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_types(spec: dict[str, Any]) -> None:
    for name in ("path", "method", "endpoint", "event_type"):
        if spec.get(name) is not None and not isinstance(spec[name], str):
            raise FaultSpecError(f"{name} must be a string", name)
    for name in ("execute", "redeliver"):
        if spec.get(name) is not None and not isinstance(spec[name], bool):
            raise FaultSpecError(f"{name} must be true or false", name)
    method = spec.get("method")
    if method is not None and method.upper() not in METHODS:
        raise FaultSpecError(f"method must be one of {', '.join(METHODS)}", "method")


@dataclass
class Fault:
    """One armed fault.

    It fires for exactly the next `count` matching calls (then disarms) or, with
    `probability`, for each matching call with that chance until cleared.
    """

    id: str
    kind: str
    count: int | None = None
    probability: float | None = None
    seconds: float | None = None
    # API faults: a path prefix such as "/v1/transfers"; execute=True runs the call first.
    path: str | None = None
    method: str | None = None
    execute: bool = False
    # Delivery faults: `duplicate` sends `copies` in all (default 2); `drop` with `redeliver`
    # loses only this attempt, which is retried with backoff as Stripe retries a lost one.
    copies: int | None = None
    redeliver: bool = False
    # Delivery faults: only for this endpoint and/or event types matching this pattern.
    endpoint: str | None = None
    event_type: str | None = None
    fired: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The armed faults of one sandbox."""

    def __init__(self, ids: IdGenerator) -> None:
        self._ids = ids
        self.delivery: list[Fault] = []
        self.api: list[Fault] = []

    def arm(self, target: str, spec: dict[str, Any]) -> Fault:
        """Check `spec` completely, then arm it (`target`: "deliveries" or "api")."""
        for name in spec:
            if name not in FIELDS[target]:
                raise FaultSpecError(f"Received unknown parameter: {name}", name)
        kinds = DELIVERY_KINDS if target == "deliveries" else API_KINDS
        kind = spec.get("kind")
        if kind not in kinds:
            raise FaultSpecError(f"kind must be one of {', '.join(kinds)}", "kind")
        count = spec.get("count")
        probability = spec.get("probability")
        if (count is None) == (probability is None):
            raise FaultSpecError("give exactly one of count or probability", "count")
        if count is not None and (not _whole(count) or count < 1):
            raise FaultSpecError("count must be a positive integer", "count")
        if probability is not None and not (_number(probability) and 0 < probability <= 1):
            raise FaultSpecError("probability must be in (0, 1]", "probability")
        seconds = spec.get("seconds")
        if seconds is not None and not (_number(seconds) and seconds >= 0):
            raise FaultSpecError("seconds must be a non-negative number", "seconds")
        if kind == "delay" and seconds is None:
            raise FaultSpecError("a delay needs seconds", "seconds")
        copies = spec.get("copies")
        if copies is not None and (kind != "duplicate" or not _whole(copies) or copies < 2):
            raise FaultSpecError(
                "copies goes with duplicate and is a whole number of at least 2", "copies"
            )
        if spec.get("redeliver") and kind != "drop":
            raise FaultSpecError("redeliver goes with drop", "redeliver")
        _check_types(spec)
        fault = Fault(
            id=self._ids.new("fault", 12),
            kind=str(kind),
            count=count,
            probability=None if probability is None else float(probability),
            seconds=None if seconds is None else float(seconds),
            path=spec.get("path"),
            method=(spec.get("method") or "").upper() or None,
            execute=bool(spec.get("execute", False)),
            copies=copies,
            redeliver=bool(spec.get("redeliver", False)),
            endpoint=spec.get("endpoint"),
            event_type=spec.get("event_type"),
        )
        (self.delivery if target == "deliveries" else self.api).append(fault)
        return fault

    def clear(self) -> None:
        self.delivery.clear()
        self.api.clear()

    def for_api(self, method: str, path: str) -> Fault | None:
        return self._pick(
            self.api,
            lambda f: (
                (f.path is None or path.startswith(f.path))
                and (f.method is None or f.method == method)
            ),
        )

    def for_delivery(self, endpoint_id: str, event_type: str) -> Fault | None:
        return self._pick(
            self.delivery,
            lambda f: (
                (f.endpoint is None or f.endpoint == endpoint_id)
                and (f.event_type is None or fnmatch.fnmatchcase(event_type, f.event_type))
            ),
        )

    def _pick(self, faults: list[Fault], matches: Any) -> Fault | None:
        for fault in list(faults):
            if not matches(fault):
                continue
            if fault.count is not None:
                fault.count -= 1
                fault.fired += 1
                if fault.count == 0:
                    faults.remove(fault)
                return fault
            assert fault.probability is not None
            if self._ids.random() < fault.probability:
                fault.fired += 1
                return fault
        return None
