"""`reconciler worker`: the background half of the service, without HTTP. It applies inbox
events, executes accepted payouts and refunds, and runs the scheduled jobs, until SIGTERM or
SIGINT; then it stops them in the runtime's order (a tick in hand finishes, its lease is
given up) and exits. For deployments that run `reconciler serve` with the scheduler (and
perhaps the inbox worker) off, and one or more of these beside it."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import replace

from reconciler.config import Settings
from reconciler.runtime import open_runtime

log = logging.getLogger("reconciler")


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until a signal arrives (or `stop` is set, for tests in-process)."""
    # What the command is for, whatever the web instances were told.
    settings = replace(
        settings, inbox_worker_enabled=True, payout_executor_enabled=True, scheduler_enabled=True
    )
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with open_runtime(settings) as runtime:
            names = ", ".join(job.name for job in runtime.scheduler.jobs)
            log.info("worker %s running: inbox, payouts, jobs (%s)", runtime.scheduler.owner, names)
            await stopping.wait()
            log.info("worker %s stopping", runtime.scheduler.owner)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
