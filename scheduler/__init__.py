"""Scheduled jobs: APScheduler in the service's event loop (`service.JobScheduler`), a lease
per job in the database so one instance runs each tick (`lease`), what a job is (`jobs.Job`)
and the service's jobs (`standard.standard_jobs`: thin calls into `reconciler/`)."""
