"""`python -m reconciler.cli`: the `reconciler` command."""

from __future__ import annotations

import sys

from reconciler.cli import main

sys.exit(main())
