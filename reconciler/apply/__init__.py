"""Applying Stripe objects to the ledger: one function per object kind, one way in."""

from __future__ import annotations

from reconciler.apply.events import EventApplier, apply_object

__all__ = ["EventApplier", "apply_object"]
