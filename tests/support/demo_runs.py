"""Real run directories for the compare and HTML tests: ``bench-metrics demo`` processes,
started together (each is mostly waiting) and awaited with a deadline."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.cli_process import bench_metrics

WAIT_S = 120.0
#: A short, busy run: ~600 samples, enough for p99's order statistics to mean something.
BASE_ARGS = ("--duration", "2", "--qps", "300", "--no-tui", "--interval", "0.25")
BASE_ARGS += ("--listen", "127.0.0.1:0")  # runs go on side by side: no fixed port


def make_runs(root: Path, runs: Mapping[str, Sequence[str]]) -> dict[str, Path]:
    """One demo run per entry (name -> extra demo options) under ``root``; their directories."""
    procs: dict[str, subprocess.Popen[str]] = {}
    out: dict[str, Path] = {}
    try:
        for name, extra in runs.items():
            out[name] = root / name
            procs[name] = subprocess.Popen(
                [
                    *bench_metrics(),
                    "--log-level",
                    "WARNING",
                    "demo",
                    *BASE_ARGS,
                    *extra,
                    "--output-dir",
                    str(out[name]),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        for name, proc in procs.items():
            _, stderr = proc.communicate(timeout=WAIT_S)
            assert proc.returncode == 0, f"demo {name} failed ({proc.returncode}): {stderr[-2000:]}"
            assert (out[name] / "samples.parquet").is_file(), f"demo {name}: no samples.parquet"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return out


def merge(out: Path, *runs: Path) -> Path:
    """``bench-metrics merge OUT RUN...`` (a real process); ``out``."""
    done = subprocess.run(
        [*bench_metrics(), "merge", str(out), *map(str, runs)],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert done.returncode == 0, done.stderr
    return out
