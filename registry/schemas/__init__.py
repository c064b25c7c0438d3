"""The JSON Schemas of the two final files (SPEC §7), shipped as package data.

A package (not a bare folder) so that installing bench-metrics installs the
``*.json`` files beside this module. Read-only: nothing here validates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["FINAL_SNAPSHOT_SCHEMA_PATH", "RESULT_SUMMARY_SCHEMA_PATH", "load_schema"]

_HERE = Path(__file__).resolve().parent
#: ``final_snapshot.json`` (ours and upstream's)
FINAL_SNAPSHOT_SCHEMA_PATH = _HERE / "final_snapshot.schema.json"
#: ``result_summary.json`` (the Report)
RESULT_SUMMARY_SCHEMA_PATH = _HERE / "result_summary.schema.json"


def load_schema(path: Path) -> dict[str, Any]:
    """The schema stored at ``path`` (one of the constants above)."""
    with path.open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema
