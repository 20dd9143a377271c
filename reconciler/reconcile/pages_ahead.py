"""A Stripe list whose first page is asked for now, before anyone iterates it.

A run walks its lists one after another. Within a list the gateway asks for the next page as
soon as one arrives; between lists nothing did, so each list's first page was a round trip
no work overlapped (twice a later page's time, four times a run). A run opens the next list
as it starts on the last page of the one before: its first page is on its way while that
page is compared and committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from reconciler.types import StripeObject


class PagesAhead:
    """The pages of `pages` (a `StripeGateway.list_pages` walk), the first already asked for.

    Iterate it once; `aclose` it whether or not it was iterated (an unread first page is
    cancelled, the walk closed)."""

    def __init__(self, pages: AsyncGenerator[StripeObject, None]) -> None:
        self._pages = pages
        self._first: asyncio.Task[StripeObject | None] = asyncio.create_task(
            self._read_first(), name="reconcile-first-page"
        )
        self._first_taken = False

    async def _read_first(self) -> StripeObject | None:
        return await anext(self._pages, None)

    def __aiter__(self) -> PagesAhead:
        return self

    async def __anext__(self) -> StripeObject:
        if self._first_taken:
            return await anext(self._pages)
        self._first_taken = True
        first = await self._first
        if first is None:
            raise StopAsyncIteration
        return first

    async def aclose(self) -> None:
        if not self._first.done():
            self._first.cancel()
        # The first page's error (or cancellation) is the iterator's to raise, not closing's.
        await asyncio.gather(self._first, return_exceptions=True)
        await self._pages.aclose()
