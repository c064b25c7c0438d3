"""One run per output directory: an exclusive lock file beside the final files (SPEC §7).

Two aggregators writing one directory would leave one run's ``run_id`` over the
other run's numbers. :class:`RunLock` makes the second one fail before it
writes anything, with an error naming the holder.

How it works:

* The lock is ``.bench-metrics.lock`` in the output directory, locked with
  ``flock(LOCK_EX | LOCK_NB)``. The kernel drops an flock when its holder dies,
  however it dies (``kill -9`` included), so a lock of a dead process is
  recognised without guessing from pids: the next run takes it over and logs
  whose it was.
* While held, the file holds one JSON line: pid, run id, host and start time.
  A refused run reads it to name the holder.
* On release the holder removes the file while still holding the flock. A
  contender that opened the old file and gets its flock afterwards sees that
  the path no longer names that file and tries again, so two runs never both
  believe they hold the lock.
* A parent that holds the lock can hand it to a child process (``bench-metrics
  demo`` starts ``aggregate`` this way): pass :meth:`RunLock.child_env` and
  ``pass_fds=(lock.fileno(),)``. The child adopts the inherited descriptor
  only when it is the very file at the lock path and holds its flock; it
  never removes the file (the parent does).

This module must never write anything in the output directory but its own
lock file, and never remove a lock file it does not hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from registry.delivery.atomic_file import pid_alive
from registry.delivery.safe_open import open_for_writing

__all__ = ["INHERITED_LOCK_ENV", "LOCK_NAME", "DirectoryLocked", "LockHolder", "RunLock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".bench-metrics.lock"
#: Environment variable naming an inherited, already locked descriptor of the lock file.
INHERITED_LOCK_ENV = "BENCH_METRICS_RUN_LOCK_FD"

# A holder writes its line just after taking the flock: a contender that reads
# in between sees an empty (or a previous, dead holder's) line and reads again.
_HOLDER_READ_DEADLINE_S = 1.0
_TAKE_ATTEMPTS = 20


@dataclass(frozen=True)
class LockHolder:
    """Who a lock file says holds it (fields ``None`` when the file does not say)."""

    pid: int | None = None
    run_id: str | None = None
    host: str | None = None
    started: str | None = None

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        pid = doc.get("pid")
        return cls(
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            run_id=_str_or_none(doc.get("run_id")),
            host=_str_or_none(doc.get("host")),
            started=_str_or_none(doc.get("started")),
        )

    def to_json(self) -> str:
        fields = {"pid": self.pid, "run_id": self.run_id, "host": self.host}
        return json.dumps({**fields, "started": self.started}) + "\n"

    def describe(self) -> str:
        """``pid 123 (run r-1) on host h``, with whatever the file said."""
        parts = [f"pid {self.pid}" if self.pid is not None else "an unknown process"]
        if self.run_id is not None:
            parts.append(f"(run {self.run_id})")
        if self.host is not None and self.host != socket.gethostname():
            parts.append(f"on host {self.host}")
        return " ".join(parts)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class DirectoryLocked(Exception):
    """The output directory is held by another run; the message names the holder."""

    def __init__(self, directory: Path, holder: LockHolder | None) -> None:
        self.directory = directory
        self.holder = holder
        who = holder.describe() if holder is not None else "another process"
        if holder is not None and holder.pid is not None and not pid_alive(holder.pid):
            who += " (no longer running; a process it started holds the lock)"
        super().__init__(f"{directory} is in use by {who}; one run per output directory")


class RunLock:
    """The exclusive lock of ``directory`` for the run ``run_id``.

    :meth:`acquire` takes it (``DirectoryLocked`` when another run holds it,
    ``OSError`` when the lock file cannot be created); :meth:`release` (or
    leaving the ``with`` block) gives it back. The directory must exist.
    """

    def __init__(self, directory: str | os.PathLike[str], run_id: str | None) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.run_id = run_id
        self._fd: int | None = None
        self._owner = False
        #: the dead holder whose lock this one took over, if any
        self.took_over: LockHolder | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def fileno(self) -> int:
        if self._fd is None:
            raise RuntimeError("the run lock is not held")
        return self._fd

    def child_env(self) -> dict[str, str]:
        """Environment entries that let a child started with ``pass_fds=(fileno(),)`` adopt it."""
        return {INHERITED_LOCK_ENV: str(self.fileno())}

    # -- taking it -------------------------------------------------------------------

    def acquire(self) -> RunLock:
        if self._fd is not None:
            return self
        if self._adopt_inherited():
            return self
        for _ in range(_TAKE_ATTEMPTS):
            # never through a link: a lock file that is one is refused (LinkRefused)
            fd = open_for_writing(self.path, read=True, truncate=False)
            try:
                if not self._try_flock(fd):
                    raise DirectoryLocked(self.directory, self._read_holder(fd))
                if not self._still_at_path(fd):
                    os.close(fd)  # released (removed) while we waited: try the new file
                    continue
                previous = LockHolder.parse(_read_all(fd))
                self._write_holder(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            self._fd, self._owner = fd, True
            if previous is not None and previous.pid != os.getpid():
                self.took_over = previous
                logger.warning(
                    "took over the stale lock %s of %s, which is no longer running",
                    self.path,
                    previous.describe(),
                )
            return self
        raise OSError(errno.EAGAIN, f"could not take {self.path}: it kept being replaced")

    @staticmethod
    def _try_flock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _still_at_path(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _adopt_inherited(self) -> bool:
        text = os.environ.get(INHERITED_LOCK_ENV)
        if not text:
            return False
        try:
            fd = int(text)
            # Only the very file at our lock path, whose flock this descriptor holds.
            if not (self._still_at_path(fd) and self._try_flock(fd)):
                return False
        except (ValueError, OSError):
            return False
        self._fd, self._owner = fd, False
        logger.debug("using the run lock %s inherited from the parent process", self.path)
        return True

    def _write_holder(self, fd: int) -> None:
        holder = LockHolder(
            pid=os.getpid(),
            run_id=self.run_id,
            host=socket.gethostname(),
            started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        data = holder.to_json().encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)  # one small write: a reader sees all of it or nothing

    def _read_holder(self, fd: int) -> LockHolder | None:
        deadline = time.monotonic() + _HOLDER_READ_DEADLINE_S
        holder = None
        while True:
            with contextlib.suppress(OSError):
                holder = LockHolder.parse(_read_all(fd))
            live = holder is not None and holder.pid is not None and pid_alive(holder.pid)
            if live or time.monotonic() >= deadline:
                return holder
            time.sleep(0.01)

    # -- giving it back ----------------------------------------------------------------

    def release(self) -> None:
        """Give the lock back (idempotent); an adopted lock stays with the parent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._owner:
                try:
                    self.path.unlink()
                except OSError as exc:  # e.g. the directory became read-only
                    logger.debug("could not remove %s: %s; the flock is released", self.path, exc)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_all(fd: int) -> str:
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 4096, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        if offset > 65536:  # a lock line is tiny; do not read a huge foreign file
            break
    return b"".join(chunks).decode("utf-8", "replace")
