"""``python -m exporter.upstream ARGS``: our aggregator under mlcommons/endpoints' command line.

Upstream's benchmark starts its metrics aggregator as ``python -m
inference_endpoint.async_utils.services.metrics_aggregator --socket-dir …``.
Pointing its launcher at this module instead (the module name is the only
change) runs ``bench-metrics aggregate`` with the same arguments, upstream's
defaults and readiness protocol; see the README's compatibility section.
This module only forwards; it never parses more than ``aggregate`` does.
"""

from __future__ import annotations

import sys

from exporter.cli import main

if __name__ == "__main__":
    sys.exit(main(["aggregate", *sys.argv[1:]]))
