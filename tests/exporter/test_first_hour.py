"""A newcomer's first hour (issue 14): each thing that got in the way, as the new user
typed it, and what they see now.

The command-line probes run ``bench-metrics`` itself (in-process through
``cli.main`` where only parsing is involved, as a subprocess where the process
matters: signals, exit codes); the screen items run the real command in a real
terminal (tmux) of the width the report was made at.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.samples import Sample

import exporter.cli.main as cli
from exporter.views.live_view import MAX_PLAIN_LINE, RATES_NOTE
from exporter.views.report_view import QPS_NOTE
from tests.support.exporter_support import (
    Child,
    bench_metrics,
    samples,
    scrape,
    start_export,
    start_publisher,
)
from tests.support.helpers import wait_until
from tests.support.terminal import Screen, need_tmux, run_in_terminal

ROOT = Path(__file__).resolve().parents[2]


def issued_samples(url: str) -> list[Sample]:
    return [x for x in samples(scrape(url)) if x.name == "bench_samples_issued_total"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- 2. every bad option: one line naming the flag, exit 2, nothing run -------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["demo", "--interval", "nan"], "--interval"),
        (["demo", "--namespace", "1bad-ns"], "--namespace"),
        (["watch", "--timeout", "nan"], "--timeout"),
        (["watch", "--refresh", "nan"], "--refresh"),
        (["export", "--connect", "tcp://127.0.0.1:99999"], "--connect"),
        (["aggregate", "--events", "tcp://127.0.0.1:99999"], "--events"),
        (["watch", "--connect", "tcp://127.0.0.1:0"], "--connect"),
        (["demo", "--duration", "-1"], "--duration"),
        (["demo", "--qps", "inf"], "--qps"),
        (["demo", "--seed", "x"], "--seed"),
        (["export", "--connect", "ipc:///x", "--linger", "1e400"], "--linger"),
        (["report", "/nonexistent/final_snapshot.json"], "/nonexistent/final_snapshot.json"),
        (["merge", "/tmp/bm-out", "/nonexistent/run"], "/nonexistent/run"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, err  # one line: no usage block, no traceback
    assert err.startswith(f"bench-metrics {argv[0]}: error: ") and flag in err
    # the flag's name, never the internal field behind it
    assert not re.search(r"\b[a-z]+_(s|ms|ns|qps)\b", err), err


def test_port_99999_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    """libzmq takes 99999 modulo 2**16 and waits there forever: refused before it starts."""
    for argv in (
        ["export", "--connect", "tcp://127.0.0.1:99999"],
        ["aggregate", "--events", "tcp://127.0.0.1:99999", "--snapshots", "ipc:///tmp/bm-s",
         "--output-dir", str(tmp_path)],
    ):  # fmt: skip
        done = Child([*bench_metrics(), *argv])
        assert done.proc.wait(30) == 2
        done.stop()
        assert "port 99999 is out of range (1-65535)" in "\n".join(done.err)


def test_an_output_dir_that_is_a_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "results"
    a_file.write_text("not a directory")
    code, _, err = run_cli(capsys, "demo", "--output-dir", str(a_file))
    assert code == 2
    assert (
        err == f"bench-metrics demo: error: --output-dir: {a_file}: exists and is not a directory\n"
    )


def test_an_unknown_flag_gets_the_subcommands_usage_and_the_nearest_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(capsys, "demo", "--intervall", "1")
    assert code == 2
    assert err.startswith("usage: bench-metrics demo ")  # not the top-level usage
    assert err.splitlines()[-1] == (
        "bench-metrics demo: error: unrecognized arguments: --intervall 1 "
        "(did you mean --interval?)"
    )
    code, _, err = run_cli(capsys, "wacth")
    assert code == 2 and "(did you mean 'watch'?)" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out == f"bench-metrics {importlib.metadata.version('bench-metrics')}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["demo"],
        ["aggregate", "--events", "ipc:///e", "--snapshots", "ipc:///s", "--output-dir", "/tmp"],
        ["export", "--connect", "ipc:///s"],
    ],
)
def test_label_is_taken_by_every_command_that_exports(argv: list[str]) -> None:
    args = cli.parse_args(cli.build_parser(), [*argv, "--label", "model=x", "--label", "gpu=h100"])
    assert args.label == ["model=x", "gpu=h100"]


# -- 2. the same exit code for the same signal on every command ---------------------------


def _started(command: str, tmp_path: Path) -> tuple[Child, list[Child]]:
    """``command`` running and past its start-up, with what it needs beside it."""
    snaps = f"ipc://{tmp_path}/snap.sock"
    if command == "export":
        export, _ = start_export("--connect", snaps, "--listen", "127.0.0.1:0")
        return export, []
    if command == "watch":
        publisher = start_publisher(snaps, tmp_path / "pub", "--no-final", "--interval", "0.05")
        watch = Child([*bench_metrics(), "watch", "--connect", snaps, "--no-tui"])
        watch.wait_for("] live", stream="out")
        return watch, [publisher]
    if command == "aggregate":
        argv = ["aggregate", "--events", f"ipc://{tmp_path}/ev.sock", "--snapshots", snaps]
        agg = Child([*bench_metrics(), *argv, "--output-dir", str(tmp_path / "out")])
        agg.wait_for("aggregating events from")
        return agg, []
    demo = Child([*bench_metrics(), "demo", "--duration", "60", "--qps", "20", "--no-tui",
                  "--listen", "127.0.0.1:0", "--output-dir", str(tmp_path / "out")])  # fmt: skip
    demo.wait_for("] live", stream="out")
    return demo, []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["demo", "aggregate", "export", "watch"])
def test_a_signal_ends_every_command_with_128_plus_its_number(
    workdir: Path, command: str, sig: signal.Signals
) -> None:
    child, helpers = _started(command, workdir)
    try:
        assert child.stop(sig) == 128 + sig, "\n".join(child.err[-20:])
    finally:
        for h in helpers:
            h.stop()


def test_the_readme_tables_the_exit_codes_per_command_and_signal() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| command | success |") :].split("\n\n", 1)[0]
    for command in ("demo", "aggregate", "export", "watch", "report", "merge"):
        assert re.search(rf"^\| `{command}` \|.*\| 130 \| 143 \|", table, re.M), command


# -- 3, 4. the screen explains its numbers, fits, and says where /metrics is --------------


def _panel_text(screen: Screen, title: str) -> str:
    """A panel's inner text as one line: its rows joined at the line breaks."""
    rows, inside = [], False
    for line in screen.lines:
        if line.startswith("╭") and title in line:
            inside = True
        elif inside and line.startswith("╰"):
            break
        elif inside:
            rows.append(line.strip().strip("│").strip())
    return " ".join(" ".join(rows).split())


def _joined(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def demo_at_80_columns(tmp_path_factory: pytest.TempPathFactory) -> tuple[Screen, Path]:
    need_tmux()
    out = tmp_path_factory.mktemp("demo80")
    argv = [*bench_metrics(), "--log-level", "WARNING", "demo", "--duration", "1.5", "--qps",
            "200", "--seed", "3", "--listen", "127.0.0.1:0", "--output-dir", str(out)]  # fmt: skip
    return run_in_terminal(argv, width=80, height=70, timeout=90), out


def test_the_live_view_labels_recent_and_whole_run_rates_and_the_offered_load(
    demo_at_80_columns: tuple[Screen, Path],
) -> None:
    screen, _ = demo_at_80_columns
    assert screen.returncode == 0, screen.text
    live = _panel_text(screen, "bench-metrics demo")
    assert re.search(r"last \d+ s whole run", live)  # the two rate columns say what they are
    assert re.search(r"QPS [\d.,]+ [\d.,]+ offered 200/s \(Poisson mean\)", live), live
    assert _joined(RATES_NOTE) in live
    # in flight (requests) and pending (tokenizations) are two different things, named so
    assert "In flight 0" in live and "Tokenizations pending 0" in live
    assert "Pending" not in live.replace("Tokenizations pending", "")


def test_the_report_explains_qps_and_says_complete_once(
    demo_at_80_columns: tuple[Screen, Path],
) -> None:
    screen, out = demo_at_80_columns
    report = _panel_text(screen, "result_summary.json")
    summary = json.loads((out / "result_summary.json").read_text())
    completed = summary["samples"]["tracked"]["completed"]
    assert f"QPS {summary['qps']:,.1f} = {completed:,} completions ÷ " in report
    assert "LoadGen QPS" in report and "(mlcommons/endpoints' qps)" in report
    assert _joined(QPS_NOTE) in report  # why it is below the offered 200/s
    assert not re.search(r"COMPLETE\s+complete", report)
    assert "every event counted, nothing pending: exact" in report
    after = _joined(screen.text[screen.text.rindex("╰") :])
    assert re.search(r"Offered 200/s for 1.5 s \(Poisson arrivals\): [\d,]+ issued", after)


def test_at_80_columns_nothing_breaks_mid_word(demo_at_80_columns: tuple[Screen, Path]) -> None:
    screen, out = demo_at_80_columns
    summary = json.loads((out / "result_summary.json").read_text())
    report = _panel_text(screen, "result_summary.json")
    # every line break of the panel fell between words: joined at the breaks, the
    # trailer reads as written (a break inside a word would put a space in it)
    versions = summary["run"]["versions"]
    trailer = f"generated {summary['generated_at']} · python {versions['python']}, "
    assert trailer + f"bench_metrics {versions['bench_metrics']}" in report
    assert all(len(line) <= 80 for line in screen.lines)


def test_plain_lines_fit_120_columns_and_say_where_metrics_is(workdir: Path) -> None:
    scraped: list[str] = []

    def serving(screen: Screen) -> bool:
        m = re.search(r"^/metrics at (http://127\.0\.0\.1:(\d+)/metrics)$", screen.text, re.M)
        if m is None or m[2] == "0":
            return False
        scraped.append(scrape(m[1].removesuffix("/metrics")))  # the real port, serving
        return True

    argv = [*bench_metrics(), "--log-level", "WARNING", "demo", "--duration", "30", "--qps",
            "100", "--no-tui", "--listen", "127.0.0.1:0", "--output-dir", str(workdir)]  # fmt: skip
    screen = run_in_terminal(argv, width=120, height=60, timeout=60, until=serving, then_send="C-c")
    assert screen.returncode == 130, screen.text
    assert scraped and "bench_samples_issued_total" in scraped[0]
    assert re.search(r"^run demo-\d{8}-\d{6}$", screen.text, re.M)
    progress = [line for line in screen.lines if line.startswith("[")]
    assert progress
    # shorter than the terminal: none of them wrapped
    assert all("qps" in line and len(line) <= MAX_PLAIN_LINE for line in progress), progress


# -- 5. the run id travels; /healthz agrees with up; nothing outside the clone --------------


def test_export_takes_the_run_id_from_the_stream_and_healthz_agrees_with_up(
    workdir: Path,
) -> None:
    endpoint = f"ipc://{workdir}/snap.sock"
    export, url = start_export("--connect", endpoint, "--listen", "127.0.0.1:0")
    publisher = None
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            health = json.loads(resp.read())
        assert (health["status"], health["up"]) == ("waiting", False)
        tag = ["--run-id", "bench-7", "--label", "model=m1"]
        publisher = start_publisher(endpoint, workdir, "--no-final", "--interval", "0.05", *tag)
        got: list[Sample] = []
        assert wait_until(lambda: got.extend(issued_samples(url)) or got, 20)
        issued = got[0]
        assert issued.labels["run_id"] == "bench-7" and issued.labels["model"] == "m1"
        with urllib.request.urlopen(url + "/healthz", timeout=5) as resp:
            health = json.loads(resp.read())
        assert (health["status"], health["up"], health["run_id"]) == ("ok", True, "bench-7")
    finally:
        if publisher is not None:
            publisher.stop()
        export.stop()


def test_export_run_id_pins_it_over_the_streams(workdir: Path) -> None:
    endpoint = f"ipc://{workdir}/snap.sock"
    export, url = start_export("--connect", endpoint, "--listen", "127.0.0.1:0",
                               "--run-id", "pinned")  # fmt: skip
    publisher = start_publisher(endpoint, workdir / "pub", "--no-final", "--interval", "0.05",
                                "--run-id", "from-stream")  # fmt: skip
    try:
        got: list[Sample] = []
        assert wait_until(lambda: got.extend(issued_samples(url)) or got, 20)
        assert got[0].labels["run_id"] == "pinned"
    finally:
        publisher.stop()
        export.stop()


def test_the_report_of_a_final_snapshot_names_the_run_and_the_files_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ROOT / "tests" / "data" / "mlcommons-endpoints"
    ours = next(source.glob("**/final_snapshot.json"))
    doc = json.loads(ours.read_text())
    doc.setdefault("run", {}).update(
        run_id="run-from-file", versions={"bench_metrics": "0.0.1-old", "python": "3.0"}
    )
    path = tmp_path / "final_snapshot.json"
    path.write_text(json.dumps(doc))
    code, out, _ = run_cli(capsys, "report", str(path))
    assert code == 0
    assert re.search(r"Run run-from-file", out)
    # the versions that wrote the file, not those rendering it now
    assert "bench_metrics 0.0.1-old, python 3.0" in out
    assert importlib.metadata.version("bench-metrics") not in out


def test_compose_keeps_the_final_files_in_a_named_volume() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    named = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if "--output-dir" not in command:
            continue
        out_dir = command[command.index("--output-dir") + 1]
        mounts = [str(v).split(":") for v in service.get("volumes", [])]
        holders = [src for src, dst, *_ in mounts if out_dir.startswith(dst.rstrip("/") + "/")
                   or out_dir == dst]  # fmt: skip
        assert holders and holders[0] in named, (name, out_dir, mounts)


def test_the_readme_is_self_contained() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    spec = ROOT / "docs" / "SPEC.md"
    assert "docs/SPEC.md" in readme and spec.is_file()
    shared = ROOT.parent / "shared" / "SPEC.md"
    for candidate in (shared, ROOT.parent.parent / "shared" / "SPEC.md"):
        if candidate.is_file():  # beside a working copy: the vendored one is the same text
            assert spec.read_text() == candidate.read_text()
    # every link to a file of the repository resolves inside the clone
    for target in re.findall(r"\]\((?!https?://|#)([^)#]+)", readme):
        assert (ROOT / target).exists(), target


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip(reason="the signal and terminal probes are Linux-only")
