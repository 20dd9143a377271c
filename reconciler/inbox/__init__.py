"""The webhook inbox: every Stripe event, stored before it is acknowledged, then applied.

A row's life: `received -> processing -> done | failed | dead` (and `ignored` for events of the
other mode). Failed rows come back after an exponential backoff; after `max_attempts` they are
dead, with the error kept, until an operator replays them. A claim is a lease: a row left in
`processing` by a worker that died is claimed again once `locked_until` has passed.

The modules, in the order a delivery meets them: `signature` and `envelope` (verify and read
the body), `writer` and `group_commit` (submit it; its batch is committed with `inserts`),
`events` (the rows' shapes, statuses and retry policy), `fresh` and `claims` (how the worker
takes rows), `worker` and `appliers` (applying them), `queries` (what operators ask).
`catchup` and `cursors` fill the same inbox from Stripe's `/v1/events`, for what webhooks
missed.

This package imports nothing of the ledger: what applies events is handed to the worker.
"""
