"""Helper processes for tests/exporter/test_parent_watch.py: a real parent → child →
grandchild chain.

Run as ``python tests/support/parent_watch_child.py ROLE DIR [options]``. Every process
reports through files in DIR (written whole, then renamed, so a reader never
sees half a line):

* ``parent DIR [--thread] [--arm-after FILE]``: starts ``child`` with
  :func:`child_env` (from a worker thread that then exits, with ``--thread``),
  writes ``parent.json`` and blocks until killed.
* ``child DIR [--arm-after FILE]``: installs a SIGTERM handler (writes
  ``child.term``, exits 143), writes ``child.waiting`` and waits for FILE if
  asked (so the test can kill the parent before the child arms), arms, starts
  an armed ``grandchild`` and an ``unarmed`` one that merely inherits this
  environment, writes ``child.json``, waits for signals.
* ``grandchild DIR`` / ``unarmed DIR``: the same without children.
* ``reap REPORT CMD...``: a child subreaper: runs CMD with this process's
  stdio, and appends ``started PID`` and ``exit PID CODE`` for CMD and every
  orphan of it that ends, so a test can see an orphan's exit code.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[2])

from exporter.cli.parent_watch import PARENT_PID_ENV, arm_from_environment, child_env  # noqa: E402

_PR_SET_CHILD_SUBREAPER = 36


def write(directory: Path, name: str, data: dict[str, Any]) -> None:
    tmp = directory / f".{name}.tmp"
    tmp.write_text(json.dumps(data))
    tmp.replace(directory / name)


def spawn(role: str, directory: Path, *extra: str, env: dict[str, str] | None) -> int:
    cmd = [sys.executable, __file__, role, str(directory), *extra]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL).pid


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} never appeared")
        time.sleep(0.005)


def parent(directory: Path, args: list[str]) -> None:
    at = args.index("--arm-after") if "--arm-after" in args else len(args)
    extra = args[at : at + 2]
    pids: list[int] = []
    if "--thread" in args:
        worker = threading.Thread(
            target=lambda: pids.append(spawn("child", directory, *extra, env=child_env()))
        )
        worker.start()
        worker.join()  # the forking thread is gone: PDEATHSIG would fire now
    else:
        pids.append(spawn("child", directory, *extra, env=child_env()))
    write(directory, "parent.json", {"pid": os.getpid(), "child": pids[0]})
    sys.stdin.read()  # until killed


def armed_process(role: str, directory: Path, args: list[str]) -> None:
    def on_term(signum: int, frame: object) -> None:
        (directory / f"{role}.term").write_text(str(os.getpid()))
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    inherited = os.environ.get(PARENT_PID_ENV)
    if role == "child":
        write(directory, "child.waiting", {"pid": os.getpid()})
        if "--arm-after" in args:
            wait_for(Path(args[args.index("--arm-after") + 1]))
    mechanism = arm_from_environment()
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "mechanism": mechanism,
        "inherited": inherited,
        "left_in_env": os.environ.get(PARENT_PID_ENV),
    }
    if role == "child":
        info["grandchild"] = spawn("grandchild", directory, env=child_env())
        info["unarmed"] = spawn("unarmed", directory, env=None)
    write(directory, f"{role}.json", info)
    while True:
        signal.pause()


def reap(report: Path, cmd: list[str]) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"PR_SET_CHILD_SUBREAPER: {os.strerror(ctypes.get_errno())}")
    lines = [f"started {subprocess.Popen(cmd).pid}"]
    while True:
        tmp = report.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(report)
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        lines.append(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


def main(argv: list[str]) -> int:
    role, rest = argv[0], argv[1:]
    if role == "reap":
        return reap(Path(rest[0]), rest[1:])
    directory = Path(rest[0])
    if role == "parent":
        parent(directory, rest[1:])
    elif role in ("child", "grandchild", "unarmed"):
        armed_process(role, directory, rest[1:])
    else:
        raise SystemExit(f"unknown role {role}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
