"""Opening a file for writing without writing through a link, and writing every byte.

SPEC §7: the project never writes through a link it did not create. Every
file the project opens for writing (run lock, raw-store files, the temporary
files of the atomic writer and of ``samples.parquet``, logs) is opened here:

- ``O_NOFOLLOW``: a symbolic link at the path is refused (``ELOOP``), never
  followed, whether it points at a file or nowhere;
- an existing file is only reused when it is a regular file with one name
  (a hard link to a file elsewhere would be written through as well): it is
  checked with ``fstat`` on the opened descriptor *before* anything is
  truncated, so a refused file is left exactly as it was;
- ``O_NONBLOCK`` while opening, so a FIFO in the way is refused instead of
  blocking the run.

:class:`WholeWrites` is the file object handed to pyarrow: its ``write``
returns only when every byte is with the OS, or raises. (A plain unbuffered
file object may write part of a buffer on a nearly full disk and report the
shorter count, which pyarrow's writers do not check: the file would silently
miss bytes while the caller counts them as written.)

This module only opens and writes; it never decides a file name, never
removes anything and never follows a link.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "LinkRefused",
    "WholeWrites",
    "make_directory",
    "open_for_writing",
    "open_whole_writes",
]


class LinkRefused(OSError):
    """The path names a symbolic link, a file with other names or no regular file."""


def _refuse(path: str | os.PathLike[str], why: str) -> LinkRefused:
    name = os.path.basename(os.fspath(path))
    return LinkRefused(errno.ELOOP, f"{name} is {why} (not written through)", os.fspath(path))


def open_for_writing(
    path: str | os.PathLike[str],
    *,
    exclusive: bool = False,
    truncate: bool = True,
    read: bool = False,
    mode: int = 0o644,
) -> int:
    """A descriptor open for writing ``path`` (created when missing), never through a link.

    ``exclusive``: the file must not exist yet (``O_EXCL``; temporary files).
    Otherwise an existing regular file with one name is reused, emptied when
    ``truncate``. ``read`` opens it read-write. Raises :class:`LinkRefused`
    (an :class:`OSError`, ``ELOOP``) for a symbolic link, a hard-linked file,
    a FIFO, a device or a directory; other :class:`OSError` as ``os.open``.
    """
    flags = (os.O_RDWR if read else os.O_WRONLY) | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_NONBLOCK  # a FIFO must not block the open; cleared below
    if exclusive:
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and os.path.islink(path)):
            raise _refuse(path, "a symbolic link") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):
            raise _refuse(path, "not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "not a regular file")
        if st.st_nlink > 1:
            raise _refuse(path, f"a file with {st.st_nlink} names (a hard link)")
        os.set_blocking(fd, True)
        if truncate and not exclusive and st.st_size:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_directory(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory the project writes files into (made with its parents when
    missing); :class:`LinkRefused` when it is a symbolic link (an ``lstat`` check: the
    project's own subdirectories, such as ``raw/``, are never reached through a link)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    st = os.lstat(p)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(p, "a symbolic link to a directory")
    return p


class WholeWrites(io.RawIOBase):
    """A write-only file object on a descriptor whose ``write`` writes every byte or raises."""

    def __init__(self, fd: int, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._fd = fd
        self.name = os.fspath(path)
        self._pos = 0

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def tell(self) -> int:
        return self._pos

    def write(self, data: Any) -> int:
        if self.closed:  # never onto a descriptor number the process may have reused
            raise ValueError(f"write to closed file {self.name}")
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            # a short write (nearly full disk) is continued; the next one raises ENOSPC
            done += os.write(self._fd, view[done:])
        self._pos += done
        return done

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


def open_whole_writes(
    path: str | os.PathLike[str], *, exclusive: bool = False, truncate: bool = True
) -> WholeWrites:
    """:func:`open_for_writing` wrapped in :class:`WholeWrites` (for pyarrow's writers)."""
    return WholeWrites(open_for_writing(path, exclusive=exclusive, truncate=truncate), Path(path))
