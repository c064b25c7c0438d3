"""The arrow between the two packages points one way: exporter → registry (issue 26).

``registry`` decides every number and never imports ``exporter``; the in-process
session's ``listen=`` / ``pushgateway=`` reach the exporter through the entry
point it registers (pyproject.toml), not through an import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from registry.session_api import EXPORTER_ENTRY_POINT

ROOT = Path(__file__).resolve().parents[2]


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module named by an import statement or an ``import_module("...")`` call."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and ast.unparse(node.func).endswith(("import_module", "__import__"))
        ):
            names.append((node.lineno, node.args[0].value))
    return names


def test_no_module_in_registry_imports_the_exporter() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted((ROOT / "registry").rglob("*.py"))
        for line, name in _imported_names(ast.parse(path.read_text(), str(path)))
        if name == "exporter" or name.startswith("exporter.")
    ]
    assert offenders == []


def test_the_scan_would_see_an_import_of_the_exporter() -> None:
    code = (
        "from exporter.prometheus.mirror import PrometheusMirror\n"
        "def f():\n    import exporter.prometheus.collector\n"
        "importlib.import_module('exporter.http.listen')\n"
    )
    assert [n for _, n in _imported_names(ast.parse(code))] == [
        "exporter.prometheus.mirror",
        "exporter.prometheus.collector",
        "exporter.http.listen",
    ]


def test_the_sessions_exporter_hook_is_the_prometheus_mirror() -> None:
    from exporter.prometheus.mirror import SessionMirror

    group, name = EXPORTER_ENTRY_POINT
    found = list(entry_points(group=group, name=name))
    assert len(found) == 1, found
    assert found[0].load() is SessionMirror


def test_a_session_without_listen_never_loads_the_exporter(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from registry import SyncMetricsSession\n"
        f"with SyncMetricsSession({str(tmp_path / 'out')!r}, interval_s=0.05) as m:\n"
        "    m.sample_issued()\n"
        "    m.sample_completed(1000)\n"
        "assert m.report['samples']['all']['completed'] == 1, m.report\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('exporter', 'aiohttp')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
