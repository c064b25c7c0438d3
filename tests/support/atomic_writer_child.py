"""Helper process for the kill -9 test: forks writers that rewrite one large JSON file.

Usage: python atomic_writer_child.py PATH N_COUNTERS

Builds the document once (imports and data cost paid once), prints
``ready``, then serves commands on stdin, one per line:

* ``go GEN``: fork a writer that rewrites PATH forever with generations
  GEN+1, GEN+2, ...; prints the writer's pid. The test SIGKILLs that pid.
* ``reap``: wait for the last writer; prints ``signal N`` or ``exit N``.

Each generation is a terminal snapshot (dict form) whose ``counter`` and every
counter value equal the generation number, so a reader can tell a complete
file from a torn one.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from registry.delivery.atomic_file import write_json_atomic
from registry.delivery.snapshot import CounterStat, MetricsSnapshot, SessionState
from registry.delivery.snapshot_codec import snapshot_to_dict


def _write_forever(path: str, doc: dict[str, Any], generation: int) -> None:
    while True:
        generation += 1
        doc["counter"] = generation
        for m in doc["metrics"]:
            m["value"] = generation
        write_json_atomic(path, doc)


def main() -> None:
    path, n_counters = sys.argv[1], int(sys.argv[2])
    snap = MetricsSnapshot(
        counter=0,
        timestamp_ns=0,
        state=SessionState.COMPLETE,
        n_pending_tasks=0,
        metrics=[CounterStat(f"counter_{i:06d}", 0) for i in range(n_counters)],
    )
    doc = snapshot_to_dict(snap)
    print("ready", flush=True)
    pid = 0
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "go":
            pid = os.fork()
            if pid == 0:
                try:
                    _write_forever(path, doc, int(args[0]))
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status):
                print(f"signal {os.WTERMSIG(status)}", flush=True)
            else:
                print(f"exit {os.WEXITSTATUS(status)}", flush=True)


if __name__ == "__main__":
    main()
