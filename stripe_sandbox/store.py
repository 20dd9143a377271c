"""In-memory objects by id and by kind, list objects with cursors, and `expand`."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, overload

from .errors import StripeError, invalid_request, missing
from .forms import Params, get_dict, get_int, get_list

Obj = dict[str, Any]

# Stripe's wording in "No such ..." messages.
KIND_NAMES = {
    "payment_intent": "payment_intent",
    "charge": "charge",
    "refund": "refund",
    "transfer": "transfer",
    "transfer_reversal": "transfer_reversal",
    "balance_transaction": "balance transaction",
    "account": "account",
    "event": "event",
    "webhook_endpoint": "webhook endpoint",
    "payout": "payout",
    "v2.core.event": "event",
    "v2.core.event_destination": "event destination",
}


class NewestFirst(Sequence[Obj]):
    """The objects of one kind, newest first, as they were when asked for: a view, not a
    copy, so a page of a list of 100k objects costs the page, not the list. Objects made
    later are not in it (it keeps its length); one removed later still is (a removal
    replaces the kind's order rather than changing it)."""

    def __init__(self, objects: dict[str, Obj], ids: list[str], positions: dict[str, int]) -> None:
        self._objects = objects
        self._ids = ids
        self._positions = positions
        self._length = len(ids)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Obj: ...

    @overload
    def __getitem__(self, index: slice) -> list[Obj]: ...

    def __getitem__(self, index: int | slice) -> Obj | list[Obj]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(index)
        return self._objects[self._ids[self._length - 1 - index]]

    def __iter__(self) -> Iterator[Obj]:
        for i in range(self._length - 1, -1, -1):
            yield self._objects[self._ids[i]]

    def __reversed__(self) -> Iterator[Obj]:
        for i in range(self._length):
            yield self._objects[self._ids[i]]

    def index_of(self, object_id: Any) -> int | None:
        """Where the object is in this view (0: the newest), or None if it is not."""
        position = self._positions.get(object_id) if isinstance(object_id, str) else None
        if position is None or position >= self._length:
            return None
        return self._length - 1 - position


class Store:
    """Every object the sandbox has made, kept as the JSON Stripe would send."""

    def __init__(self) -> None:
        self._objects: dict[str, Obj] = {}
        self._order: dict[str, list[str]] = {}
        # Per kind: each object's place in `_order`, so a list finds its cursor at once.
        self._positions: dict[str, dict[str, int]] = {}

    def add(self, obj: Obj) -> Obj:
        self._objects[obj["id"]] = obj
        order = self._order.setdefault(obj["object"], [])
        self._positions.setdefault(obj["object"], {})[obj["id"]] = len(order)
        order.append(obj["id"])
        return obj

    def find(self, object_id: str) -> Obj | None:
        return self._objects.get(object_id)

    def get(self, kind: str, object_id: str, *, param: str | None = None) -> Obj:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != kind:
            raise missing(KIND_NAMES.get(kind, kind), object_id, param=param)
        return obj

    def remove(self, object_id: str) -> None:
        obj = self._objects.get(object_id)
        if obj is None:
            return
        # New containers, not changed ones: views handed out before keep what they showed.
        # Removals are rare (an endpoint, a deleted account), so the copies cost little.
        self._objects = dict(self._objects)
        del self._objects[object_id]
        order = [i for i in self._order[obj["object"]] if i != object_id]
        self._order[obj["object"]] = order
        self._positions[obj["object"]] = {i: n for n, i in enumerate(order)}

    def newest_first(self, kind: str) -> Sequence[Obj]:
        """A view (see `NewestFirst`): handlers filter it into lists of their own."""
        return NewestFirst(self._objects, self._order.get(kind, []), self._positions.get(kind, {}))

    def count(self, kind: str) -> int:
        return len(self._order.get(kind, []))

    def kinds(self) -> list[str]:
        """Every kind of object stored so far (`payment_intent`, `event`, ...)."""
        return list(self._order)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def created_filter(params: Params) -> Callable[[Obj], bool]:
    """`created=<ts>` or `created[gt|gte|lt|lte]=<ts>`."""
    raw = params.get("created")
    if raw is None:
        return lambda _obj: True
    if isinstance(raw, str):
        exact = get_int(params, "created")
        return lambda obj: obj["created"] == exact
    bounds = get_dict(params, "created")
    checks: list[tuple[str, int]] = []
    for op in bounds:
        ts = get_int(bounds, op)
        assert ts is not None
        if op not in _COMPARE:
            raise invalid_request(
                f"Received unknown parameter: created[{op}]",
                param=f"created[{op}]",
                code="parameter_unknown",
            )
        checks.append((op, ts))
    return lambda obj: all(_COMPARE[op](obj["created"], ts) for op, ts in checks)


def paginate(
    items: Iterable[Obj], params: Params, url: str, *, cursors: list[Obj] | None = None
) -> Obj:
    """A Stripe list object over `items`, which must already be newest first.

    A cursor is an object, not a row of this page's filter: it is placed among `cursors`
    (all objects of the kind, newest first; default: `items`), so "everything since the last
    event I saw" works whatever that event's type.
    """
    limit = get_int(params, "limit")
    if limit is None:
        limit = 10
    if not 1 <= limit <= 100:
        raise invalid_request(
            "This value must be greater than or equal to 1 and less than or equal to 100.",
            param="limit",
        )
    keep = created_filter(params)
    after = params.get("starting_after")
    before = params.get("ending_before")
    if after and before:
        raise invalid_request(
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    if isinstance(items, NewestFirst) and cursors is None:
        page, has_more = _view_page(items, keep, limit, after, before)
        return {"object": "list", "data": page, "has_more": has_more, "url": url}
    rows = [obj for obj in items if keep(obj)]
    if after or before:
        order = {obj["id"]: i for i, obj in enumerate(rows if cursors is None else cursors)}
    if after:
        cursor = _position(order, after, "starting_after")
        older = [obj for obj in rows if order.get(obj["id"], -1) > cursor]
        page = older[:limit]
        has_more = limit < len(older)
    elif before:
        cursor = _position(order, before, "ending_before")
        newer = [obj for obj in rows if order.get(obj["id"], len(order)) < cursor]
        start = max(0, len(newer) - limit)
        page = newer[start:]
        has_more = start > 0
    else:
        page = rows[:limit]
        has_more = limit < len(rows)
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def _position(order: dict[str, int], object_id: Any, param: str) -> int:
    if object_id not in order:
        raise _no_such_cursor(object_id, param)
    return order[object_id]


def _no_such_cursor(object_id: Any, param: str) -> StripeError:
    return invalid_request(f"No such object: '{object_id}'", param=param, code="resource_missing")


def _view_page(
    view: NewestFirst, keep: Callable[[Obj], bool], limit: int, after: Any, before: Any
) -> tuple[list[Obj], bool]:
    """The page `paginate` answers for a whole kind, found from the cursor's place rather
    than by filtering every object: what a page costs does not grow with the list."""
    if after:
        cursor = _view_position(view, keep, after, "starting_after")
        return _scan(view, keep, range(cursor + 1, len(view)), limit)
    if before:
        cursor = _view_position(view, keep, before, "ending_before")
        newer, has_more = _scan(view, keep, range(cursor - 1, -1, -1), limit)
        return newer[::-1], has_more
    return _scan(view, keep, range(len(view)), limit)


def _view_position(
    view: NewestFirst, keep: Callable[[Obj], bool], object_id: Any, param: str
) -> int:
    position = view.index_of(object_id)
    # As over a filtered list: the cursor must be one of the objects the filter keeps.
    if position is None or not keep(view[position]):
        raise _no_such_cursor(object_id, param)
    return position


def _scan(
    view: NewestFirst, keep: Callable[[Obj], bool], indexes: range, limit: int
) -> tuple[list[Obj], bool]:
    """Up to `limit` objects `keep` keeps, in the order of `indexes`, and whether there are
    more."""
    found: list[Obj] = []
    for index in indexes:
        obj = view[index]
        if keep(obj):
            if len(found) == limit:
                return found, True
            found.append(obj)
    return found, False


def expand(store: Store, body: Obj, params: Params) -> Obj:
    """Return a copy of `body` with the `expand[]` paths replaced by the objects they name.

    The paths were checked (`expandable.check_expand`) before the call ran, so this never
    refuses: a field that is absent or names no stored object is left as it is.
    """
    paths = get_list(params, "expand")
    result = copy.deepcopy(body)
    for path in paths:
        _expand_path(store, result, path.split("."))
    return result


def _expand_path(store: Store, node: Any, parts: list[str]) -> None:
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "data" and node.get("object") == "list":
        for item in node["data"]:
            _expand_path(store, item, rest)
        return
    value = node.get(head)
    if isinstance(value, str):
        target = store.find(value)
        if target is None:
            return
        node[head] = value = copy.deepcopy(target)
    _expand_path(store, value, rest)
