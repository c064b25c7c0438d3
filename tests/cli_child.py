"""Test child: ``bench-metrics`` as a subprocess, from this source tree.

Until every subcommand module is merged into a branch, the dispatcher is limited
to the ones that exist, so the exporter tests can run ``export`` on its own.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter import cli

cli.COMMANDS = tuple(
    c for c in cli.COMMANDS if importlib.util.find_spec(f"exporter.commands.{c}") is not None
)

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
