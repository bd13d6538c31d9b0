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


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert "version" not in compose  # obsolete in the Compose Specification
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


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


def test_published_ports_are_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [spec for service in services.values() for spec in service.get("ports", [])]
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


def test_redis_is_durable_never_evicts_and_keeps_link_buckets_compact(
    services: dict[str, dict[str, Any]],
) -> None:
    args = [str(arg) for arg in services["redis"]["command"]]
    assert args[0] == "redis-server"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    # The link store's bucket sizing (redirector/store/keys.py) assumes exactly these limits.
    for name, value in REDIS_MEMORY_CONFIG.items():
        assert options[f"--{name}"] == str(value), name


def test_cluster_nodes_are_durable_never_evict_and_keep_link_buckets_compact(
    services: dict[str, dict[str, Any]],
) -> None:
    nodes = {name: service for name, service in services.items() if name.startswith("redis-node")}
    assert len(nodes) == 6
    for name, node in nodes.items():
        args = [str(arg) for arg in node["command"]]
        options = dict(zip(args[1::2], args[2::2], strict=True))
        assert args[0] == "redis-server" and options["--cluster-enabled"] == "yes"
        assert options["--appendonly"] == "yes"
        assert options["--maxmemory-policy"] == "noeviction"
        for setting, value in REDIS_MEMORY_CONFIG.items():
            assert options[f"--{setting}"] == str(value), (name, setting)
        # Data and nodes.conf (the membership) survive re-creating the container.
        assert node["volumes"] == [f"{name}:/data"] and node["profiles"] == ["cluster"]
    create = " ".join(services["redis-cluster-create"]["command"])
    assert "--cluster create" in create and "--cluster-replicas 1" in create
    assert create.count(":6379") == len(nodes)


def test_apps_start_once_redis_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("admin", "redirector"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_image_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    dockerfile = COMPOSE_FILE.with_name("Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2
    users = re.findall(r"^USER +(\S+)", dockerfile, re.M)
    assert users and users[-1].partition(":")[0] not in {"root", "0"}
