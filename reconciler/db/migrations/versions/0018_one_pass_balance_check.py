"""PostgreSQL checks each journal entry's balance in one pass.

The per-statement balance check of 0004 read every touched entry's legs twice (once to count
them, once to sum them per currency): for a batch's thousands of legs that was about as much
as inserting them. Now one correlated subquery per entry does both, through the same
`entry_id` index; the rule is unchanged (at least two legs, debits equal credits in each
currency, old legs of the entry included), and so are the messages, told apart only once an
entry is refused. SQLite has no such trigger: nothing to do there.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

CHECK = """
CREATE OR REPLACE FUNCTION journal_entries_must_balance() RETURNS trigger AS $$
DECLARE
    offending bigint;
    leg_count bigint;
BEGIN
    SELECT touched.entry_id INTO offending
    FROM (SELECT DISTINCT entry_id FROM added) AS touched
    WHERE (
        SELECT coalesce(sum(per_currency.legs), 0) < 2 OR coalesce(bool_or(per_currency.off), false)
        FROM (
            SELECT count(*) AS legs, sum(legs.debit) <> sum(legs.credit) AS off
            FROM journal_legs AS legs
            WHERE legs.entry_id = touched.entry_id
            GROUP BY legs.currency
        ) AS per_currency
    )
    LIMIT 1;
    IF offending IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO leg_count FROM journal_legs WHERE entry_id = offending;
    IF leg_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has fewer than two legs', offending;
    END IF;
    RAISE EXCEPTION 'journal entry % does not balance', offending;
END $$ LANGUAGE plpgsql
"""

# 0004's, to go back to.
TWO_PASS_CHECK = """
CREATE OR REPLACE FUNCTION journal_entries_must_balance() RETURNS trigger AS $$
DECLARE
    offending bigint;
BEGIN
    SELECT touched.entry_id INTO offending
    FROM (SELECT DISTINCT entry_id FROM added) AS touched
    WHERE (SELECT count(*) FROM journal_legs AS legs WHERE legs.entry_id = touched.entry_id) < 2
    LIMIT 1;
    IF offending IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % has fewer than two legs', offending;
    END IF;
    SELECT touched.entry_id INTO offending
    FROM (SELECT DISTINCT entry_id FROM added) AS touched
    WHERE EXISTS (
        SELECT 1 FROM journal_legs AS legs
        WHERE legs.entry_id = touched.entry_id
        GROUP BY legs.currency
        HAVING sum(legs.debit) <> sum(legs.credit)
    )
    LIMIT 1;
    IF offending IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % does not balance', offending;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(CHECK)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(TWO_PASS_CHECK)
