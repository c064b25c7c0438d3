"""The vendored upstream fixtures are intact and equal to the shared originals."""

from __future__ import annotations

from tests.support.upstream_fixtures import (
    SESSION_A_FRAMES,
    SNAPSHOT_FRAMES,
    check_vendored_copy,
    read_frames,
)


def test_vendored_fixtures_equal_the_shared_originals() -> None:
    assert check_vendored_copy() == []


def test_frame_files_hold_the_documented_message_counts() -> None:
    # Counts from the fixture README: 22 event messages, 8 snapshot messages.
    assert len(read_frames(SESSION_A_FRAMES)) == 22
    assert len(read_frames(SNAPSHOT_FRAMES)) == 8
