"""How tests start the real ``bench-metrics`` command line as a separate process."""

from __future__ import annotations

import sys
from pathlib import Path


def bench_metrics() -> list[str]:
    """The installed console script beside this interpreter, else ``python -c`` calling ``main``."""
    script = Path(sys.executable).with_name("bench-metrics")
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from exporter.cli.main import main; sys.exit(main())",
    ]
