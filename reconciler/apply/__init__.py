"""Applying Stripe objects to the ledger: one function per object kind, one way in."""

from __future__ import annotations

from reconciler.apply.applier import EventApplier
from reconciler.apply.objects import apply_object

__all__ = ["EventApplier", "apply_object"]
