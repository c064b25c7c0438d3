"""A directory nobody can create files in, root included (for disk-failure tests)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _can_create_in(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def made_read_only(directory: Path) -> Iterator[Path]:
    """Make an existing ``directory`` one nobody can create files in, root included.

    ``chmod 555`` stops ordinary users; root ignores permissions, so then the
    directory is also made immutable with ``chattr +i`` (needs
    CAP_LINUX_IMMUTABLE and a filesystem that supports it). Skips when neither
    works. Files already open inside stay open; writable again on exit.
    """
    mode = directory.stat().st_mode & 0o777
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
        directory.chmod(mode | 0o700)
