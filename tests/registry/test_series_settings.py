"""The series keywords are declared once (registry.core.series.SeriesSettings) and taken
alike by MetricsRegistry.register_series, MetricsSession.register_series and
SeriesConfig (issue 26): same defaults, same errors, nothing registered on an error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from registry import MetricsRegistry
from registry.core.series import SeriesConfig
from registry.delivery.snapshot import DEFAULT_PERCENTILES
from registry.session_api import MetricsSession

DEFAULTS = {
    "dtype": "int",
    "hdr_low": 1,
    "hdr_high": 1000,
    "sig_figs": 3,
    "n_histogram_buckets": 30,
    "percentiles": list(DEFAULT_PERCENTILES),
    "tail_latency": False,
}
EVERY = {
    "hdr_low": 5,
    "hdr_high": 10**6,
    "sig_figs": 2,
    "n_histogram_buckets": 7,
    "percentiles": (50.0, 99.9),
    "dtype": float,
    "tail_latency": True,
}


def _registrars(tmp_path: Path) -> dict[str, tuple[Callable[..., Any], MetricsRegistry]]:
    reg = MetricsRegistry()
    session = MetricsSession(tmp_path / "out", standard_metrics=False)
    return {
        "registry": (reg.register_series, reg),
        "session": (session.register_series, session.registry),
    }


def test_defaults_and_every_keyword_reach_the_series(tmp_path: Path) -> None:
    for where, (register, reg) in _registrars(tmp_path).items():
        register("plain", hdr_low=1, hdr_high=1000)
        register("full", **EVERY)
        assert reg.series_config("plain").describe() == DEFAULTS, where
        full = reg.series_config("full").describe()
        assert full == {**EVERY, "dtype": "float", "percentiles": [50.0, 99.9]}, where
    assert SeriesConfig(hdr_low=1, hdr_high=1000).describe() == DEFAULTS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"hdr_low": 1, "hdr_high": 10, "sigfigs": 3},
            "got an unexpected keyword argument 'sigfigs'",
        ),
        ({"hdr_low": 1}, "missing required keyword-only argument: 'hdr_high'"),
        ({"hdr_high": 10}, "missing required keyword-only argument: 'hdr_low'"),
    ],
)
def test_a_wrong_keyword_is_a_type_error_and_registers_nothing(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    for where, (register, reg) in _registrars(tmp_path).items():
        with pytest.raises(TypeError, match=f"register_series\\(\\) {message}"):
            register("s", **kwargs)
        assert "s" not in reg.series_names, where
        # the keyword error comes first, as Python's own would, even for a bad name
        with pytest.raises(TypeError):
            register("", **kwargs)
    with pytest.raises(TypeError, match=f"SeriesConfig\\(\\) {message}"):
        SeriesConfig(**kwargs)
