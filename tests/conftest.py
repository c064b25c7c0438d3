"""Shared fixtures."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.read_only import made_read_only

# Hypothesis' per-example deadline is a timing assertion; on a shared 2-core machine it
# fails for load, not for a bug. Examples are bounded by their count instead.
settings.register_profile("bench-metrics", deadline=None)
settings.load_profile("bench-metrics")

# AF_UNIX paths are limited to ~107 bytes; long test names can push tmp_path past it.
_IPC_PATH_MAX = 100


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temporary directory: ``ipc://`` paths inside it stay under the limit."""
    d = Path(tempfile.mkdtemp(prefix="bm-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def ipc_endpoint(tmp_path: Path) -> Iterator[str]:
    """A fresh ``ipc://`` endpoint inside a temporary directory."""
    sock = tmp_path / "s.sock"
    if len(str(sock)) <= _IPC_PATH_MAX:
        yield f"ipc://{sock}"
        return
    short = tempfile.mkdtemp(prefix="bm-")
    try:
        yield f"ipc://{short}/s.sock"
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory nobody can create files in (see :func:`made_read_only`)."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    with made_read_only(directory):
        yield directory
