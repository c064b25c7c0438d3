"""``bench-metrics report --html`` (issue 25): one self-contained page of a real run.

In a real headless Chromium (skips when absent): no console error, no request but the
file itself (the browser is offline too), every chart present, a screenshot saved. The
checks are shown to catch a page that does request or err. Without a browser: the file
has no script and forbids every request, carries the exact numbers and the verdict,
replaces a link at OUT instead of writing through it, and an upstream file with no
per-sample data still gets its page, saying why it has no charts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from exporter.cli.main import main
from exporter.views.format import format_ns
from tests.support.browser import chromium, load_page
from tests.support.demo_runs import make_runs
from tests.support.store_runs import run_aggregate
from tests.support.upstream_fixtures import SESSION_A_FRAMES, SNAPSHOT_FINAL, read_frames

#: every chart the page of a streaming run has (data-chart names)
CHARTS = {
    *(f"distribution-{s}" for s in ("ttft_ns", "tpot_ns", "chunk_delta_ns")),
    *(f"distribution-{s}" for s in ("sample_latency_ns", "isl", "osl")),
    "requests-per-second",
    "in-flight",
    "tokens-per-second",
    "ttft-over-time",
    "latency-over-time",
}
PAGE_FACTS = {
    "svgs": "document.querySelectorAll('svg').length",
    "charts": "[...document.querySelectorAll('figure[data-chart]')].map(f => f.dataset.chart)",
    "resources": "performance.getEntriesByType('resource').map(e => e.name)",
    "title": "document.title",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("html-run")
    run = ["--seed", "5", "--slo", "ttft:p99<=200ms", "--html"]
    return make_runs(root, {"run": run})["run"]


@pytest.fixture(scope="module")
def page(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html-page") / "report.html"
    assert main(["report", "--html", str(out), str(run_dir)]) == 0
    return out


needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="no chromium (Debian package 'chromium'; .ci/run installs it)"
)


@needs_chromium
def test_page_renders_offline_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    seen = load_page(page, PAGE_FACTS)
    assert seen.requests == [page.resolve().as_uri()], seen.requests  # the file, nothing else
    assert seen.values["resources"] == []
    assert seen.errors == []
    assert set(seen.values["charts"]) == CHARTS
    assert seen.values["svgs"] == len(CHARTS)
    assert seen.values["title"].startswith("bench-metrics report: ")
    shot = tmp_path / "report.png"
    shot.write_bytes(seen.screenshot)
    assert seen.screenshot.startswith(b"\x89PNG") and shot.stat().st_size > 50_000


@needs_chromium
def test_the_browser_checks_catch_a_request_and_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><img src="http://cdn.example.invalid/chart.png">'
        '<script>console.error("boom")</script></body></html>'
    )
    seen = load_page(bad, PAGE_FACTS)
    assert "http://cdn.example.invalid/chart.png" in seen.requests
    assert seen.errors  # the console error (and the failed load)


def test_page_is_self_contained_and_carries_the_exact_numbers(page: Path, run_dir: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    for attr in ("src=", "href="):
        assert f'{attr}"http' not in text and f"{attr}'http" not in text
    assert text.count("<svg") == len(CHARTS)
    summary = json.loads((run_dir / "result_summary.json").read_text())
    p99 = summary["series"]["ttft_ns"]["percentiles"]["99.0"]
    assert format_ns(p99) in text  # the Report's exact p99, in the percentile table
    assert "ttft p99" in text.lower() and "Verdict" in text  # the verdict block
    assert summary["run"]["run_id"] in text
    assert page.stat().st_size < 5_000_000


def test_a_link_at_out_is_replaced_not_written_through(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "report.html"
    link.symlink_to(target)
    assert main(["report", "--html", str(link), str(run_dir / "final_snapshot.json")]) == 0
    assert target.read_text() == "keep me"
    assert not link.is_symlink() and "<svg" in link.read_text()


def test_an_unwritable_out_is_one_line_and_exit_2(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "r.html"
    assert main(["report", "--html", str(out), str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--html" in err


def test_upstreams_file_gets_a_page_that_says_why_it_has_no_charts(tmp_path: Path) -> None:
    final = tmp_path / "final_snapshot.json"
    shutil.copy(SNAPSHOT_FINAL, final)
    out = tmp_path / "r.html"
    assert main(["report", "--html", str(out), str(final)]) == 0
    text = out.read_text()
    assert "<svg" not in text and "No charts:" in text and "Exact percentiles" in text


def test_demo_html_writes_the_page_beside_the_final_files(run_dir: Path) -> None:
    page = run_dir / "report.html"
    text = page.read_text(encoding="utf-8")
    # written after the aggregator's exit: the raw store was whole (chunk gaps drawn)
    assert all(f'data-chart="{name}"' in text for name in CHARTS)
    assert "from the raw store" in text


def test_aggregate_html_on_upstreams_recorded_stream(tmp_path: Path) -> None:
    out = run_aggregate(tmp_path, "agg", read_frames(SESSION_A_FRAMES), "--streaming", "--html")
    text = (out / "report.html").read_text(encoding="utf-8")
    summary = json.loads((out / "result_summary.json").read_text())
    assert summary["run"]["run_id"] in text
    assert 'data-chart="distribution-sample_latency_ns"' in text
    assert 'data-chart="requests-per-second"' in text
