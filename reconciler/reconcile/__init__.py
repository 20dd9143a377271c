"""Reconciliation: differences between the ledger and Stripe, recorded for a person to resolve
(runs and comparers join them here)."""
