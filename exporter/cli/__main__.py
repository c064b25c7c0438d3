"""``python -m exporter.cli.main``: the ``bench-metrics`` command."""

import sys

from exporter.cli.main import main

sys.exit(main())
