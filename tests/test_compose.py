"""docker-compose.yml and the Dockerfile: valid Compose (`docker compose config`, where docker
compose exists) and the few deployment rules we rely on, read from the files."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from redirector.store.keys import REDIS_MEMORY_CONFIG

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def _has_docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return version.returncode == 0


@pytest.mark.skipif(not _has_docker_compose(), reason="`docker compose` is not installed here")
def test_compose_file_is_valid() -> None:
    env = {**os.environ, "ADMIN_API_KEYS": "k" * 32}
    command = ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_no_obsolete_version_key() -> None:
    assert "version" not in COMPOSE  # obsolete in the Compose Specification


def test_published_ports_are_loopback_only() -> None:
    published = [spec for service in SERVICES.values() for spec in service.get("ports", [])]
    assert published
    assert all(spec.startswith("127.0.0.1:") for spec in published), published


def test_no_secrets_in_the_file() -> None:
    """The admin keys come from the operator's environment, required there; nothing else in
    the file looks like a credential."""
    text = COMPOSE_FILE.read_text()
    keys = re.findall(r"ADMIN_API_KEYS: *(.*)", text)
    assert keys and all(re.fullmatch(r"\$\{ADMIN_API_KEYS:?\?[^}]*\}", key) for key in keys), keys
    secret = re.compile(r"^\s*[\w-]*(SECRET|PASSW|TOKEN|CREDENTIAL|PRIVATE)[\w-]*:", re.I | re.M)
    assert secret.findall(text) == []


def test_redis_is_durable_never_evicts_and_keeps_link_buckets_compact() -> None:
    # AOF is pointless unless /data outlives the container: a named volume keeps it.
    assert "redis-data:/data" in SERVICES["redis"]["volumes"] and "redis-data" in COMPOSE["volumes"]
    args = [str(arg) for arg in SERVICES["redis"]["command"]]
    assert args[0] == "redis-server"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "always"  # a host crash loses no acknowledged link
    assert options["--maxmemory-policy"] == "noeviction"
    # The link store's bucket sizing (redirector/store/keys.py) assumes exactly these limits.
    for name, value in REDIS_MEMORY_CONFIG.items():
        assert options[f"--{name}"] == str(value), name


def test_cluster_nodes_are_durable_never_evict_and_keep_link_buckets_compact() -> None:
    nodes = {name: service for name, service in SERVICES.items() if name.startswith("redis-node")}
    assert len(nodes) == 6
    for name, node in nodes.items():
        args = [str(arg) for arg in node["command"]]
        options = dict(zip(args[1::2], args[2::2], strict=True))
        assert args[0] == "redis-server" and options["--cluster-enabled"] == "yes"
        assert options["--appendonly"] == "yes"
        assert options["--appendfsync"] == "always"
        assert options["--maxmemory-policy"] == "noeviction"
        for setting, value in REDIS_MEMORY_CONFIG.items():
            assert options[f"--{setting}"] == str(value), (name, setting)
        # Data and nodes.conf (the membership) survive re-creating the container.
        assert node["volumes"] == [f"{name}:/data"] and node["profiles"] == ["cluster"]
    create = " ".join(SERVICES["redis-cluster-create"]["command"])
    assert "--cluster create" in create and "--cluster-replicas 1" in create
    assert create.count(":6379") == len(nodes)


def test_apps_listen_in_the_container_reach_redis_and_check_their_health() -> None:
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("admin", "redirector"):
        app, prefix = SERVICES[name], name.upper()
        assert app["depends_on"]["redis"] == {"condition": "service_healthy"}
        # Every interface inside the container; the host publishes the port on loopback only.
        assert app["environment"][f"{prefix}_HOST"] == "0.0.0.0"
        # The single Redis by default; the cluster profile's nodes when REDIS_URL says so.
        assert app["environment"]["REDIS_URL"] == "${REDIS_URL:-redis://redis:6379/0}"
        healthz = f"http://127.0.0.1:{app['environment'][f'{prefix}_PORT']}/healthz"
        assert healthz in " ".join(app["healthcheck"]["test"]), name


def test_locust_runs_only_in_the_load_profile_and_reads_loadtests_only() -> None:
    locust = {name for name, service in SERVICES.items() if service["command"][0] == "locust"}
    assert locust == {"locust-master", "locust-worker"}
    for name, service in SERVICES.items():
        cluster = name.startswith("redis-node") or name == "redis-cluster-create"
        expected = ["load"] if name in locust else ["cluster"] if cluster else None
        assert service.get("profiles") == expected, name
        if name in locust:
            assert service["volumes"] == ["./loadtests:/app/loadtests:ro"], name


def _stage_user(stages: dict[str, tuple[str, str]], stage: str) -> str | None:
    """The user a stage runs as: its last USER, else its parent stage's (None: root)."""
    parent, body = stages[stage]
    users = re.findall(r"^USER +(\S+)", body, re.M)
    return users[-1] if users else _stage_user(stages, parent) if parent in stages else None


def test_every_runtime_target_runs_as_a_non_root_user_and_bakes_in_no_secret() -> None:
    dockerfile = COMPOSE_FILE.with_name("Dockerfile").read_text().replace("\\\n", " ")
    parts = re.split(r"^FROM +(\S+)(?: +AS +(\S+))?.*$", dockerfile, flags=re.M | re.I)
    stages = dict(zip(parts[2::3], zip(parts[1::3], parts[3::3], strict=True), strict=True))
    targets = {service["build"]["target"] for service in SERVICES.values() if "build" in service}
    assert targets == {"app", "load"} and len(stages) > len(targets)  # multi-stage
    for target in targets:
        assert (_stage_user(stages, target) or "root").partition(":")[0] not in {"root", "0"}
    # Keys come from the environment at run time, never from the image.
    settings = re.findall(r"^(?:ENV|ARG) +(.*)", dockerfile, re.M)
    assert settings and not [
        line for line in settings if re.search(r"KEY|SECRET|PASSW|TOKEN", line, re.I)
    ]


def test_the_redirector_serves_metrics_on_a_port_that_is_not_published() -> None:
    redirector = SERVICES["redirector"]
    metrics_port = redirector["environment"]["METRICS_PORT"]
    assert re.fullmatch(r"\$\{METRICS_PORT:-\d+\}", metrics_port), metrics_port
    assert all(spec.endswith(":8080") for spec in redirector["ports"])
