"""`GET /api/v1/jobs` and the jobs' figures in `/metrics`: each job's schedule, its newest run
by any instance, and its next run."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from reconciler.job_runs import finish_run, start_run
from reconciler.types import utcnow
from tests.handlers.api.conftest import Api
from tests.handlers.api.test_payouts import onboarded, pay


def test_jobs_show_their_schedule_newest_run_and_next_run(api: Api) -> None:
    account, _ = onboarded(api)
    pay(api, account, 10000)
    now = utcnow()

    async def runs() -> None:
        assert await api.runtime.scheduler.tick("platform_balance", now) is not None
        # A job this instance does not declare, run by another (and failed there).
        async with api.runtime.database.write() as conn:
            run_id = await start_run(conn, "older_job", "other-host:1:ab", now)
            await finish_run(
                conn, run_id, outcome="failed", detail="GatewayError: down", now=now, ms=1500
            )

    api.run(runs)
    status, body = api.call("GET", "/jobs", api.token("operator"))
    assert status == 200, body
    jobs = {job["name"]: job for job in body["data"]}
    # This instance's inbox worker is off: it declares no inbox retries job.
    assert list(jobs) == ["platform_balance", "stale_sweep", "events_catch_up", "older_job"]
    balance = jobs["platform_balance"]
    assert balance["schedule"] == "every 300s"
    run = balance["last_run"]
    assert (run["outcome"], run["owner"]) == ("succeeded", api.runtime.scheduler.owner)
    assert run["detail"].startswith("usd: available ")
    assert datetime.fromisoformat(run["started_at"]) == now
    assert run["duration_ms"] >= 0 and run["finished_at"] is not None
    # The scheduler runs here: its next tick is within one period from now.
    next_run = datetime.fromisoformat(balance["next_run_at"])
    assert now < next_run <= now + timedelta(seconds=301)
    assert jobs["stale_sweep"]["last_run"] is None
    assert jobs["events_catch_up"]["schedule"] == "every 300s"
    assert jobs["older_job"]["schedule"] is None
    assert jobs["older_job"]["last_run"]["detail"] == "GatewayError: down"

    status, refused = api.call("GET", "/jobs", api.token("merchant", account))
    assert (status, refused["error"]["code"]) == (403, "forbidden")

    scraped = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(api.client.get("/metrics").text)
        for sample in family.samples
    }
    assert scraped[("reconciler_job_last_succeeded", (("job", "platform_balance"),))] == 1
    assert scraped[("reconciler_job_last_succeeded", (("job", "older_job"),))] == 0
    assert scraped[("reconciler_job_last_duration_seconds", (("job", "older_job"),))] == 1.5
    assert (
        scraped[("reconciler_job_last_started_timestamp_seconds", (("job", "platform_balance"),))]
        == now.timestamp()
    )
    runs_total = "reconciler_job_runs_total"
    assert scraped[(runs_total, (("job", "platform_balance"), ("outcome", "succeeded")))] == 1
