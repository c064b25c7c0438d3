"""The one generator of run ids, for every place that needs a fresh one.

Format: ``run-<UTC start, YYYYmmddTHHMMSSZ>-<6 hex digits>``, e.g.
``run-20261207T162500Z-1a2b3c``. The time makes ids sort by start; the random
suffix keeps two runs started in the same second apart. The aggregate command,
the in-process session and the exporter all use it, so their runs sort
together. This module only makes ids; it never checks a given one (that is
:func:`exporter.cli.args.run_id` on the command line).
"""

from __future__ import annotations

import datetime as dt
import secrets

__all__ = ["new_run_id"]


def new_run_id() -> str:
    """A fresh run id: ``run-`` + UTC time to the second + ``-`` + 6 random hex digits."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{now}-{secrets.token_hex(3)}"
