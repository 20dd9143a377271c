"""What a scheduled job is: a name, when it runs (every so many seconds, or a crontab line
in UTC), and an async function of `now` that does its work and says in a few words how it
went. Adding a job is one `Job(...)` in the list the runtime hands the scheduler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

Tick = Callable[[datetime], Awaitable[str]]


@dataclass(frozen=True)
class Job:
    name: str
    run: Tick
    every: float | None = None  # seconds between ticks
    cron: str | None = None  # or a crontab line (minute hour day month weekday), UTC

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError(f"job {self.name}: give it either `every` or `cron`")
        if self.every is not None and self.every <= 0:
            raise ValueError(f"job {self.name}: `every` must be positive, got {self.every}")

    @property
    def schedule(self) -> str:
        return f"every {self.every:g}s" if self.every is not None else f"cron {self.cron} UTC"

    def trigger(self) -> BaseTrigger:
        if self.every is not None:
            return IntervalTrigger(seconds=self.every, timezone=UTC)
        assert self.cron is not None
        return CronTrigger.from_crontab(self.cron, timezone=UTC)

    def next_after(self, moment: datetime) -> datetime | None:
        """When a tick after `moment` falls (as this instance's trigger would fire it)."""
        if self.every is not None:
            return moment + timedelta(seconds=self.every)
        # The trigger answers the first fire time at or after the moment it is given.
        after = moment + timedelta(seconds=1)
        fire: datetime | None = self.trigger().get_next_fire_time(None, after)
        return fire

    def min_gap(self, now: datetime) -> timedelta:
        """Two runs closer than this are the same tick seen by two instances: half the time
        between ticks. (Instances' clocks and triggers never agree to the millisecond.)"""
        if self.every is not None:
            return timedelta(seconds=self.every / 2)
        first = self.next_after(now)
        second = self.next_after(first) if first is not None else None
        if first is None or second is None:
            return timedelta(0)
        return (second - first) / 2
