"""One run-id format for every place that makes one (issue 26): the aggregate
command, the in-process session and the exporter's collector."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from exporter.cli.commands import aggregate
from exporter.prometheus.collector import SnapshotCollector
from registry.delivery.run_id import new_run_id
from registry.session_api import MetricsSession

RUN_ID = re.compile(r"run-\d{8}T\d{6}Z-[0-9a-f]{6}")


def test_a_new_run_id_has_the_format_and_is_fresh() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert all(RUN_ID.fullmatch(i) for i in ids), ids
    assert len(ids) == 50  # 24 random bits each: a clash here is a bug, not luck


def test_every_default_run_id_has_the_one_format(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    aggregate.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["aggregate", "--events", "ipc:///tmp/x-e", "--snapshots", "ipc:///tmp/x-s",
         "--output-dir", str(tmp_path / "agg")]
    )  # fmt: skip
    made = {
        "aggregate": aggregate.build_service(args).run_id,
        "session": MetricsSession(tmp_path / "session").run_id,
        "collector": SnapshotCollector().run_id,
    }
    for where, run_id in made.items():
        assert RUN_ID.fullmatch(run_id), (where, run_id)
    assert len(set(made.values())) == 3
