"""How tests start the real ``bench-metrics`` command line as a separate process."""

from __future__ import annotations

import sys
from pathlib import Path


def bench_metrics() -> list[str]:
    """The installed console script beside this interpreter, else ``python -c`` calling ``main``.

    Not ``python -m exporter.cli``: run that way, the module is ``__main__`` and
    the commands' ``exporter.cli.UsageError`` is another class than the one
    ``__main__.main`` catches, so a usage error exits 1 with a traceback.
    """
    script = Path(sys.executable).with_name("bench-metrics")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main())"]
