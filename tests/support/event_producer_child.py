"""Test child process: a benchmark's event producer that sends part of a session, then
goes quiet without ``session.ended`` (until a signal kills it).

Usage: python tests/support/event_producer_child.py EVENTS_ENDPOINT

Binds a real :class:`registry.events.EventPublisher` on EVENTS_ENDPOINT, waits for the
aggregator's subscription, sends the shared scenario up to (not including)
``session.ended``, prints ``sent N`` and then sleeps, its socket open, as a live
producer that is merely quiet does. ``kill -9`` makes it a producer that is gone.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from registry.events import EventPublisher, EventType
from tests.support.aggregator_scenario import SCENARIO


async def main(endpoint: str) -> int:
    body = [e for e in SCENARIO if e.event_type is not EventType.SESSION_ENDED]
    with EventPublisher(endpoint) as pub:
        if not await pub.wait_for_subscriber(30):
            print("no subscriber", flush=True)
            return 1
        pub.send_many(body)
        print(f"sent {len(body)}", flush=True)
        while True:  # quiet, connected, alive: until killed
            time.sleep(3600)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
