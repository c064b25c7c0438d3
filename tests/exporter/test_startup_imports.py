"""What a command pays for at start-up: building the command line imports no HTTP
server, no Arrow and no aggregator service (each in a fresh interpreter, since a
module imported once stays imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what parsing must not import: aiohttp (~0.25 s), pyarrow (0.1-0.35 s), the service
HEAVY = ("aiohttp", "pyarrow", "registry.aggregator.service", "exporter.http.server")


def run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def loaded_after(statements: str) -> list[str]:
    code = f"import sys\n{statements}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return run_python(code).split()


def test_building_the_command_line_imports_nothing_heavy() -> None:
    assert loaded_after("from exporter.cli.main import build_parser\nbuild_parser()") == []


@pytest.mark.parametrize("module", ["registry", "exporter", "registry.aggregator"])
def test_the_packages_themselves_are_light(module: str) -> None:
    assert loaded_after(f"import {module}") == []


def test_the_lazy_names_are_the_real_ones() -> None:
    code = (
        "import registry.aggregator as a, registry.aggregator.service as s, exporter as e\n"
        "import exporter.prometheus.collector as c, exporter.http.server as h\n"
        "from registry.aggregator import AggregatorService\n"
        "from exporter import MetricsServer, MetricsServerThread, SnapshotCollector\n"
        "assert AggregatorService is s.AggregatorService is a.AggregatorService\n"
        "assert SnapshotCollector is c.SnapshotCollector\n"
        "assert (MetricsServer, MetricsServerThread) == (h.MetricsServer, h.MetricsServerThread)\n"
        "for mod, bad in ((a, 'nope'), (e, 'nope')):\n"
        "    try:\n"
        "        getattr(mod, bad)\n"
        "    except AttributeError as exc:\n"
        "        assert bad in str(exc)\n"
        "    else:\n"
        "        raise AssertionError(bad)\n"
        "print('ok')"
    )
    assert run_python(code) == "ok"


def test_a_raw_store_imports_arrow_when_made_not_at_its_first_spill(tmp_path: Path) -> None:
    """The raw store spills on the loop that records: importing pyarrow there would
    stall a running benchmark's loop for a fraction of a second."""
    code = (
        "import sys\n"
        "from registry.store.raw_store import RawStore\n"
        "assert 'pyarrow' not in sys.modules\n"
        f"RawStore({str(tmp_path / 'raw')!r})\n"
        "print('pyarrow' in sys.modules)"
    )
    assert run_python(code) == "True"
