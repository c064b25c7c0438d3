"""Per-batch completion and output-token rates of a run, for the throughput intervals.

A run's QPS and tokens/s are one number each; their uncertainty comes from how
they vary along the run. The method of batch means cuts the tracked window
(first issue → latest completion, the Report's own window) into
:data:`BATCHES` equal spans; each span's rate is one observation, and spans
long enough against a request's latency are nearly independent. Welch's
interval on the two runs' batch rates is the interval of the rate difference
(:data:`THROUGHPUT_METHOD`). Pure numbers from ``samples.parquet`` columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BATCHES", "THROUGHPUT_METHOD", "batch_rates"]

#: Equal time batches per run.
BATCHES = 20
THROUGHPUT_METHOD = f"batch means: Welch t interval on {BATCHES} equal time batches of the run"


def batch_rates(
    issued_ns: Any, complete_ns: Any, osl: Any, batches: int = BATCHES
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(completions/s, output tokens/s) in each of ``batches`` equal spans of the window.

    ``complete_ns`` may hold NaN for samples that never completed (they count
    in no batch); ``osl`` NaN counts as no tokens.
    """
    issued = np.asarray(issued_ns, dtype=np.float64)
    done = np.asarray(complete_ns, dtype=np.float64)
    tokens = np.nan_to_num(np.asarray(osl, dtype=np.float64), nan=0.0)
    finished = np.isfinite(done)
    if issued.size == 0 or not finished.any():
        empty = np.zeros(batches)
        return empty, empty
    start = float(issued.min())
    end = float(done[finished].max())
    span = max(end - start, 1.0)
    width_s = span / batches / 1e9
    idx = np.minimum(((done[finished] - start) / span * batches).astype(np.int64), batches - 1)
    counts = np.bincount(idx, minlength=batches).astype(np.float64)
    tok = np.bincount(idx, weights=tokens[finished], minlength=batches)
    return counts / width_s, tok / width_s
