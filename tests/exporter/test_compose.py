"""The docker-compose stack, checked offline (no Docker engine runs here).

docker-compose.yml is validated against the Compose Specification JSON schema
(tests/data/compose-spec.json, from compose-spec/compose-spec), and against
what the stack needs to show a live run: pinned images, health checks, the
demo reachable by Prometheus, provisioning mounted where Grafana reads it.
The Prometheus configuration goes through the real `promtool check config`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.grafana_queries import GRAFANA_DIR, REPO

COMPOSE_SCHEMA = Path(__file__).parents[1] / "data" / "compose-spec.json"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"
PINNED_IMAGES = {"prom/prometheus", "prom/pushgateway", "grafana/grafana"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_CONFIG.read_text())


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to the repository) of the bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = source
    return mounts


def scrape_job(config: dict[str, Any], name: str) -> dict[str, Any]:
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == name]
    return job


# --- the Compose specification ---------------------------------------------------------------


def test_compose_file_is_valid_against_the_compose_spec(compose, validator) -> None:
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["services"]["grafana"].update(imagee="grafana/grafana:13.2.0"),
        lambda c: c["services"]["prometheus"].update(ports="9090:9090"),
        lambda c: c["services"]["demo"]["healthcheck"].update(retries=[3]),
        lambda c: c["services"]["grafana"]["depends_on"]["prometheus"].update(
            condition="service_ready"
        ),
        lambda c: c.update(service={}),
    ],
)
def test_the_schema_rejects_broken_compose_files(compose, validator, breakage) -> None:
    broken = json.loads(json.dumps(compose))
    breakage(broken)
    assert list(validator.iter_errors(broken)), "the schema accepted a broken compose file"


# --- what the stack needs --------------------------------------------------------------------


def test_images_are_pinned_to_versions(compose) -> None:
    images = {}
    for name, service in compose["services"].items():
        if "build" in service:
            continue
        repo, _, tag = service["image"].partition(":")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {service['image']} is not pinned"
        images[repo] = tag
    assert set(images) == PINNED_IMAGES


def test_every_service_has_a_health_check(compose) -> None:
    for name, service in compose["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_demo_serves_all_interfaces_long_enough_and_prometheus_scrapes_it(
    compose, prometheus_config
) -> None:
    demo = compose["services"]["demo"]
    command = demo["command"]
    assert command[0] == "demo" and "--no-tui" in command
    listen = command[command.index("--listen") + 1]
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0", "inside its container the exporter must listen on all interfaces"
    assert float(command[command.index("--duration") + 1]) >= 600
    assert float(command[command.index("--linger") + 1]) >= 600
    job = scrape_job(prometheus_config, "bench-metrics")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert f"demo:{port}" in targets
    assert any(m.endswith(f":{port}") for m in demo["ports"])


def test_prometheus_scrapes_the_pushgateway_with_honor_labels(compose, prometheus_config) -> None:
    job = scrape_job(prometheus_config, "pushgateway")
    assert job["honor_labels"] is True
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["pushgateway:9091"]
    assert "pushgateway" in compose["services"]


def test_prometheus_gets_its_config_and_target_files(compose) -> None:
    service = compose["services"]["prometheus"]
    mounts = bind_mounts(service)
    assert mounts["/etc/prometheus"] == "./prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    job = scrape_job(config, "bench-metrics")
    for sd in job.get("file_sd_configs", []):
        for pattern in sd["files"]:
            assert not pattern.startswith("/"), "relative, so promtool here and the container agree"
            assert list(PROMETHEUS_CONFIG.parent.glob(pattern)), pattern


def test_grafana_provisioning_is_mounted_where_grafana_reads_it(compose) -> None:
    grafana = compose["services"]["grafana"]
    mounts = bind_mounts(grafana)
    for target, source in mounts.items():
        assert (REPO / source).exists(), f"{source} mounted at {target} does not exist"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/provider.yml").read_text())
    (prov,) = provider["providers"]
    dashboards_in_container = prov["options"]["path"]
    assert mounts[dashboards_in_container] == "./grafana/dashboards"

    env = grafana["environment"]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent.as_posix() == dashboards_in_container
    assert (GRAFANA_DIR / "dashboards" / Path(home).name).exists()
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_datasource_points_at_the_compose_prometheus(compose, prometheus_config) -> None:
    config = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = config["datasources"]
    assert source["uid"] == "bench-prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    # $__rate_interval is only right when Grafana knows the scrape interval.
    assert source["jsonData"]["timeInterval"] == prometheus_config["global"]["scrape_interval"]


def test_host_ports_bind_loopback_only(compose) -> None:
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} widely"


def test_docker_build_context_holds_what_the_dockerfile_copies() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    ignore = (REPO / ".dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, ".dockerignore starts from nothing and lists what the image needs"
    copied = []
    for line in dockerfile.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not parts[1].startswith("--from"):
            copied += parts[1:-1]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"
    # The package's own modules, as pyproject.toml packages them, are all in the image.
    assert {"registry", "exporter", "pyproject.toml"} <= set(copied)


# --- promtool --------------------------------------------------------------------------------

PROMTOOL = shutil.which("promtool")


@pytest.mark.prometheus
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_prometheus_config() -> None:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SUCCESS" in output and "WARNING" not in output, output


@pytest.mark.prometheus
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_rejects_a_broken_config(tmp_path) -> None:
    assert PROMTOOL is not None
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["scrape_configs"][0]["scrape_interval"] = "five seconds"
    broken = tmp_path / "prometheus.yml"
    broken.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [PROMTOOL, "check", "config", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
