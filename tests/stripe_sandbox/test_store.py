"""Lists of a whole kind are paged from a view (`NewestFirst`), found from the cursor's place:
the same pages as filtering a list of every object, at a cost that does not grow with it."""

from __future__ import annotations

from typing import Any

import pytest

from stripe_sandbox.errors import StripeError
from stripe_sandbox.forms import decode
from stripe_sandbox.store import Store, paginate

Obj = dict[str, Any]


def filled(count: int, kind: str = "charge") -> Store:
    store = Store()
    for n in range(count):
        # Two objects a second, and another kind between them: cursors are per kind.
        store.add({"id": f"{kind}_{n:05d}", "object": kind, "created": 1_000 + n // 2})
        store.add({"id": f"other_{n:05d}", "object": "other", "created": 1_000 + n // 2})
    return store


def page(items: Any, query: str) -> Obj | str:
    try:
        return paginate(items, decode(query), "/v1/charges")
    except StripeError as refused:
        return f"{refused.status} {refused.body()['error'].get('param')}"


QUERIES = [
    "limit=100",
    "limit=3",
    "",
    "limit=5&starting_after=charge_00040",
    "limit=5&starting_after=charge_00002",
    "limit=5&starting_after=charge_00000",
    "limit=5&ending_before=charge_00040",
    "limit=5&ending_before=charge_00047",
    "limit=5&ending_before=charge_00049",
    "limit=10&created[gte]=1010&created[lt]=1020",
    "limit=4&created[gte]=1010&starting_after=charge_00030",
    "limit=4&created[lte]=1015&ending_before=charge_00010",
    "limit=4&created[gt]=1020&starting_after=charge_00010",  # the cursor is outside the window
    "limit=5&starting_after=other_00003",  # another kind's object
    "limit=5&starting_after=charge_99999",
    "limit=5&starting_after=charge_00001&ending_before=charge_00003",
    "limit=0",
    "limit=101",
]


@pytest.mark.parametrize("query", QUERIES)
def test_a_view_pages_as_the_list_of_every_object_does(query: str) -> None:
    store = filled(50)
    assert page(store.newest_first("charge"), query) == page(
        list(store.newest_first("charge")), query
    )


def test_a_view_keeps_what_it_showed_when_objects_are_added_or_removed() -> None:
    store = filled(5)
    view = store.newest_first("charge")
    store.add({"id": "charge_new", "object": "charge", "created": 2_000})
    store.remove("charge_00002")
    assert [obj["id"] for obj in view] == [f"charge_{n:05d}" for n in (4, 3, 2, 1, 0)]
    assert [obj["id"] for obj in reversed(view)] == [f"charge_{n:05d}" for n in range(5)]
    assert view[0]["id"] == "charge_00004" and view[-1]["id"] == "charge_00000"
    assert [obj["id"] for obj in store.newest_first("charge")] == [
        "charge_new",
        "charge_00004",
        "charge_00003",
        "charge_00001",
        "charge_00000",
    ]
    assert store.find("charge_00002") is None
    after = paginate(store.newest_first("charge"), decode("starting_after=charge_00003"), "/")
    assert [obj["id"] for obj in after["data"]] == ["charge_00001", "charge_00000"]
