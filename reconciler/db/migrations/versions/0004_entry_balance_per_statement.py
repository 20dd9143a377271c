"""PostgreSQL checks journal balance once per statement that inserts legs, not once per leg.

The deferred constraint trigger of 0001 ran its check at commit once for every leg, so an
entry of three legs was checked three times, and a batch of a thousand legs ran two thousand
queries at commit. This trigger runs once per INSERT (or COPY) statement, over every entry it
touched, counting all of each entry's legs, those added earlier included, so a leg added to
an old entry that unbalances it is refused too. The rule it relies on, which
`LedgerSession.flush` keeps: an entry's legs are inserted in one statement.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Correlated subqueries, so each touched entry is read through the entry_id index: the
# transition table has no statistics, and a join could scan all of journal_legs instead.
CHECK = """
CREATE FUNCTION journal_entries_must_balance() RETURNS trigger AS $$
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

TRIGGER = """
CREATE TRIGGER journal_legs_balanced AFTER INSERT ON journal_legs
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION journal_entries_must_balance()
"""

# 0001's, to go back to.
PER_LEG_CHECK = """
CREATE CONSTRAINT TRIGGER journal_legs_balanced AFTER INSERT ON journal_legs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_must_balance()
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER journal_legs_balanced ON journal_legs")
    op.execute(CHECK)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER journal_legs_balanced ON journal_legs")
    op.execute("DROP FUNCTION journal_entries_must_balance()")
    op.execute(PER_LEG_CHECK)
