"""Group commit of serialised decisions: concurrent items share one transaction, each is
decided after the ones before it, and each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select

from reconciler.db.engine import Database
from reconciler.db.tables import merchants
from reconciler.errors import InvalidRequest, ReconcilerError
from reconciler.ledger.merchants import create_merchant
from reconciler.ledger.session import LedgerSession, ledger_reader
from reconciler.paths._batched import Batched


class Decider:
    """Makes a merchant per name, in order; refuses "refused"; fails the whole batch on
    "poison" with others beside it, and alone on "poison" too."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.batches: list[list[str]] = []

    async def __call__(self, tx: LedgerSession, names: list[str]) -> list[int | ReconcilerError]:
        self.batches.append(names)
        outcomes: list[int | ReconcilerError] = []
        for name in names:
            if name == "refused":
                outcomes.append(InvalidRequest(f"{name} is refused"))
                continue
            outcomes.append(await create_merchant(tx, name=name, now=self.now))
        if "poison" in names:
            raise RuntimeError("the batch failed")
        return outcomes


async def stored_names(db: Database) -> list[str]:
    async with ledger_reader(db) as tx:
        found = await tx.execute(select(merchants.c.name).order_by(merchants.c.id))
        return [str(name) for (name,) in found]


async def test_concurrent_items_are_decided_together_in_order(db: Database, now: datetime) -> None:
    decide = Decider(now)
    batched: Batched[str, int] = Batched(db, decide)
    names = [f"m{n}" for n in range(20)]
    ids = await asyncio.gather(*(batched.submit(name) for name in names))
    assert len(decide.batches) < len(names) and batched.batches == len(decide.batches)
    assert [name for batch in decide.batches for name in batch] == names
    assert ids == sorted(ids)  # decided one after another, in the order asked
    assert await stored_names(db) == names


async def test_a_refused_item_gets_its_own_error_and_the_rest_go_on(
    db: Database, now: datetime
) -> None:
    decide = Decider(now)
    batched: Batched[str, int] = Batched(db, decide)
    outcomes = await asyncio.gather(
        *(batched.submit(name) for name in ["a", "refused", "b"]), return_exceptions=True
    )
    assert isinstance(outcomes[1], InvalidRequest) and str(outcomes[1]) == "refused is refused"
    assert isinstance(outcomes[0], int) and isinstance(outcomes[2], int)
    assert decide.batches == [["a", "refused", "b"]]
    assert await stored_names(db) == ["a", "b"]


async def test_a_failing_batch_is_decided_again_one_by_one(db: Database, now: datetime) -> None:
    decide = Decider(now)
    batched: Batched[str, int] = Batched(db, decide)
    outcomes = await asyncio.gather(
        *(batched.submit(name) for name in ["a", "poison", "b"]), return_exceptions=True
    )
    assert isinstance(outcomes[1], RuntimeError)
    assert isinstance(outcomes[0], int) and isinstance(outcomes[2], int)
    assert decide.batches == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    # Nothing of the failed batch, nor of the poison alone, was committed.
    assert await stored_names(db) == ["a", "b"]
    assert batched.batches == 2


async def test_a_caller_giving_up_leaves_the_others_answered(db: Database, now: datetime) -> None:
    decide = Decider(now)
    batched: Batched[str, int] = Batched(db, decide)
    impatient = asyncio.create_task(batched.submit("gone"))
    patient = asyncio.create_task(batched.submit("here"))
    await asyncio.sleep(0)
    impatient.cancel()
    assert isinstance(await patient, int)
    with pytest.raises(asyncio.CancelledError):
        await impatient
    # What was asked is decided all the same, as a transaction of its own would be once sent.
    assert await stored_names(db) == ["gone", "here"]


async def test_a_database_out_of_reach_fails_each_caller_rather_than_hanging(now: datetime) -> None:
    unreachable = Database("postgresql+asyncpg://postgres@127.0.0.1:9/nowhere")
    decide = Decider(now)
    batched: Batched[str, int] = Batched(unreachable, decide)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(batched.submit(name) for name in ["a", "b"]), return_exceptions=True),
            30,
        )
    finally:
        await unreachable.dispose()
    assert all(isinstance(outcome, OSError) for outcome in outcomes), outcomes
    assert decide.batches == [] and batched.batches == 0
