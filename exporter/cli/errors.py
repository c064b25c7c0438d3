"""Errors the command line turns into a one-line message and exit code 2.

Kept apart from :mod:`exporter.cli.main` so that there is one class whatever way
the CLI was started: run as ``python -m exporter.cli.main`` the module is
``__main__``, and a class defined there would differ from the one the
commands import.
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""
