"""Several runs' output directories into one exact result (SPEC §11): ``bench-metrics merge``."""

from registry.merge.merge import MergeResult, check_compatible, merge_runs, merged_snapshot
from registry.merge.run_dir import MergeError, RunDir, load_run

__all__ = [
    "MergeError",
    "MergeResult",
    "RunDir",
    "check_compatible",
    "load_run",
    "merge_runs",
    "merged_snapshot",
]
