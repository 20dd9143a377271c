"""A test seam: an applier that records each application, loaded by a real `reconciler serve`
through `INBOX_APPLIER=tests.recording_applier:factory` (the `<module>:<factory>` hook).

It appends `<stripe event id>\\n` to the file `RECORDING_APPLIER_FILE` names, synced, for each
application. Not idempotent on purpose: a second application of one event shows up as a
second line. The file comes from the environment because the service process loads this
module itself; this is test code, not the service's configuration.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from reconciler.config import Settings
from reconciler.db.engine import Database
from reconciler.inbox.events import InboxEvent

SPEC = "tests.recording_applier:factory"
FILE_VARIABLE = "RECORDING_APPLIER_FILE"


class RecordingApplier:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def __call__(self, event: InboxEvent) -> None:
        await asyncio.to_thread(self._append, event.stripe_event_id)

    def _append(self, line: str) -> None:
        with self.path.open("a") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())


@asynccontextmanager
async def factory(database: Database, settings: Settings) -> AsyncIterator[RecordingApplier]:
    yield RecordingApplier(Path(os.environ[FILE_VARIABLE]))
