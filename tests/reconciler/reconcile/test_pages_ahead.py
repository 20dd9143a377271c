"""`PagesAhead`: a list's first page asked for at once, then the pages in order; closed
unread, the first page's request is cancelled and the walk closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from reconciler.reconcile.pages_ahead import PagesAhead
from reconciler.types import StripeObject


class Walk:
    """A list walk that says what it was asked, and can hold its first page back."""

    def __init__(self, pages: int, *, failing: bool = False) -> None:
        self.pages = pages
        self.failing = failing
        self.asked: list[int] = []
        self.closed = False
        self.release = asyncio.Event()

    async def walk(self) -> AsyncGenerator[StripeObject, None]:
        try:
            for number in range(self.pages):
                self.asked.append(number)
                await self.release.wait()
                if self.failing:
                    raise RuntimeError("Stripe said no")
                yield {"data": [number], "has_more": number < self.pages - 1}
        finally:
            self.closed = True


async def test_the_first_page_is_asked_for_before_the_pages_are_read() -> None:
    walk = Walk(3)
    ahead = PagesAhead(walk.walk())
    await asyncio.sleep(0)
    assert walk.asked == [0]
    walk.release.set()
    assert [page["data"] async for page in ahead] == [[0], [1], [2]]
    await ahead.aclose()
    assert walk.closed


async def test_closed_unread_its_first_page_is_cancelled_and_the_walk_closed() -> None:
    walk = Walk(2)
    ahead = PagesAhead(walk.walk())
    await asyncio.sleep(0)
    await ahead.aclose()
    assert walk.asked == [0] and walk.closed


async def test_a_walk_with_no_pages_is_an_empty_iteration() -> None:
    ahead = PagesAhead(Walk(0).walk())
    assert [page async for page in ahead] == []
    await ahead.aclose()


async def test_the_first_pages_error_is_raised_by_reading_not_by_closing() -> None:
    walk = Walk(2, failing=True)
    walk.release.set()
    ahead = PagesAhead(walk.walk())
    with pytest.raises(RuntimeError, match="Stripe said no"):
        async for _page in ahead:
            pass
    await ahead.aclose()
    assert walk.closed
