"""Inbox rows as a plain-text table for `reconciler events list`."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.inbox.events import InboxSummary

_ERROR_WIDTH = 60


def format_events(rows: Sequence[InboxSummary]) -> str:
    """One line per row, aligned; errors shortened to one line."""
    if not rows:
        return "no events"
    table = [("ID", "STRIPE EVENT", "TYPE", "ENDPOINT", "STATUS", "TRIES", "RECEIVED", "ERROR")]
    for row in rows:
        error = " ".join((row.last_error or "").split())
        if len(error) > _ERROR_WIDTH:
            error = error[: _ERROR_WIDTH - 1] + "…"
        table.append(
            (
                str(row.id),
                row.stripe_event_id,
                row.event_type,
                row.endpoint,
                row.status,
                str(row.attempts),
                row.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                error,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )
