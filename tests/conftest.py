"""Shared fixtures."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis' per-example deadline is a timing assertion; on a shared 2-core machine it
# fails for load, not for a bug. Examples are bounded by their count instead.
settings.register_profile("bench-metrics", deadline=None)
settings.load_profile("bench-metrics")

# AF_UNIX paths are limited to ~107 bytes; long test names can push tmp_path past it.
_IPC_PATH_MAX = 100


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


def _can_create_in(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can create files in, root included.

    ``chmod 555`` stops ordinary users; root ignores permissions, so then the
    directory is also made immutable with ``chattr +i`` (needs
    CAP_LINUX_IMMUTABLE and a filesystem that supports it). Skips when neither
    works.
    """
    directory = tmp_path / "read-only"
    directory.mkdir()
    directory.chmod(0o555)
    immutable = False
    try:
        if _can_create_in(directory) and shutil.which("chattr"):
            immutable = (
                subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode
                == 0
            )
        if _can_create_in(directory):
            pytest.skip("cannot make a read-only directory here (root without chattr +i)")
        yield directory
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=False)
        directory.chmod(0o755)
