"""The bytes mlcommons/endpoints really sends, and the files its own aggregator wrote.

The fixtures were recorded from upstream's code at the commit the SPEC pins
(how: ``tests/data/mlcommons-endpoints/README.md``). They are vendored into
``tests/data`` so a clean clone can run the compatibility tests anywhere;
:func:`check_vendored_copy` (used by ``test_upstream_fixtures.py``) fails when
the copy drifts from the shared original beside the repository
(``../shared/fixtures/mlcommons-endpoints``).

Reading a ``*.frames`` file gives ZeroMQ messages exactly as they were sent:
each one frame, a 40-byte topic followed by the msgpack payload. Tests replay
them byte for byte; nothing here decodes with our own codecs.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "tests" / "data" / "mlcommons-endpoints"
SHARED = ROOT.parent / "shared" / "fixtures" / "mlcommons-endpoints"
FIXTURES = VENDORED

SESSION_A_FRAMES = FIXTURES / "session-a.frames"
SESSION_A_UPSTREAM = FIXTURES / "session-a.upstream"
SESSION_A_UPSTREAM_NOTOK = FIXTURES / "session-a.upstream-notok"
SNAPSHOT_FRAMES = FIXTURES / "snapshots-live-complete.frames"
SNAPSHOT_FINAL = FIXTURES / "snapshots-live-complete.final_snapshot.json"
TOKENIZER_DIR = FIXTURES / "tokenizer"


def read_frames(path: Path) -> list[bytes]:
    """Every message of a ``*.frames`` file: ``<u32 LE length><bytes>`` records."""
    data = path.read_bytes()
    out: list[bytes] = []
    i = 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        i += 4
        out.append(data[i : i + n])
        i += n
    if i != len(data):
        raise ValueError(f"{path}: trailing bytes after the last frame record")
    return out


def load_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        result: dict[str, Any] = json.load(f)
    return result


def check_vendored_copy() -> list[str]:
    """Files whose vendored copy differs from (or is missing beside) the shared original.

    Empty when the shared directory is absent (a clone outside the workplace).
    """
    if not SHARED.is_dir():
        return []
    diffs: list[str] = []
    for src in sorted(p for p in SHARED.rglob("*") if p.is_file()):
        rel = src.relative_to(SHARED)
        dst = VENDORED / rel
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            diffs.append(str(rel))
    return diffs
