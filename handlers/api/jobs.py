"""The scheduled jobs: when each runs, how its newest run went, when it runs next."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from handlers.api.endpoints import STAFF, Call, Endpoint
from handlers.api.models import Answer
from reconciler.job_runs import JobRun, latest_runs


class JobRunAnswer(Answer):
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    outcome: str = Field(description="running, succeeded or failed")
    detail: str | None = Field(description="the job's summary, or its error")
    owner: str = Field(description="the instance that ran it")


class JobAnswer(Answer):
    name: str
    schedule: str | None = Field(
        description="`every <n>s` or `cron <line> UTC`; null for a job this instance does not "
        "declare (seen run by another)"
    )
    last_run: JobRunAnswer | None
    next_run_at: datetime | None = Field(
        description="when this instance's scheduler fires it next; with the scheduler off "
        "here, when the next tick falls after the last run (another instance runs it)"
    )


class JobList(Answer):
    data: list[JobAnswer]


async def list_jobs(call: Call) -> JobList:
    scheduler = call.runtime.scheduler
    async with call.runtime.database.read() as conn:
        runs = await latest_runs(conn)
    answers = []
    for job in scheduler.jobs:
        run = runs.pop(job.name, None)
        next_run = scheduler.next_run(job.name)
        if next_run is None and not scheduler.running and run is not None:
            next_run = job.next_after(run.started_at)
        answers.append(
            JobAnswer(
                name=job.name,
                schedule=job.schedule,
                last_run=_run(run),
                next_run_at=next_run,
            )
        )
    for name, run in sorted(runs.items()):
        answers.append(JobAnswer(name=name, schedule=None, last_run=_run(run), next_run_at=None))
    return JobList(data=answers)


def _run(run: JobRun | None) -> JobRunAnswer | None:
    if run is None:
        return None
    return JobRunAnswer.model_validate(run, from_attributes=True)


ENDPOINTS = [
    Endpoint(
        "GET",
        "/jobs",
        list_jobs,
        "The scheduled jobs: schedule, newest run (by any instance) and next run",
        JobList,
        roles=STAFF,
    ),
]
