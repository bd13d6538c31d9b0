"""docker-compose.yml and the Dockerfile: valid Compose, and the deployment rules we rely on.

tests/compose-spec.json is the Compose Specification JSON schema (draft-07), vendored verbatim
from the compose-spec/compose-spec GitHub repository, file schema/compose-spec.json at commit
00655e2222608fa6eaecdf12ac5195889ca2244a (74,133 bytes, sha256 bc50c2d79102aed8...). Apache
License 2.0, (c) the Compose Specification authors. To refresh it, replace the file with a newer
upstream copy; nothing else here depends on its version.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped, unused-ignore]

from redirector.store.keys import REDIS_MEMORY_CONFIG

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")

APP_SERVICES = ("admin", "redirector")
LOAD_SERVICES = ("locust-master", "locust-worker")
# Names that hold credentials; none may get a value in the image.
SECRET_NAME = re.compile(r"SECRET|PASSW(OR)?D|TOKEN|API_?KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
# `${ADMIN_API_KEYS:?message}`: taken from the operator's environment, and required there.
REQUIRED_API_KEYS = re.compile(r"^\$\{ADMIN_API_KEYS:?\?[^}]*\}$")

Compose = dict[str, Any]


def _mapping(value: object) -> dict[str, Any]:
    assert isinstance(value, dict), f"expected a mapping, got {type(value).__name__}"
    return value


def _load_compose() -> Compose:
    return _mapping(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = _mapping(json.loads(SCHEMA_FILE.read_text()))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@pytest.fixture
def compose() -> Compose:
    # A fresh copy per test: the rejection tests mutate it.
    return _load_compose()


def _services(compose: Compose) -> dict[str, dict[str, Any]]:
    return {name: _mapping(service) for name, service in _mapping(compose["services"]).items()}


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment`, in either of its two Compose forms, as a mapping."""
    env = service.get("environment", {})
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {key: (value if sep else None) for key, sep, value in pairs}
    return {key: None if value is None else str(value) for key, value in _mapping(env).items()}


def _depends_on(service: dict[str, Any]) -> set[str]:
    """The services `service` is started after, from either form of `depends_on`."""
    return set(service.get("depends_on", []))


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def _published(spec: str) -> tuple[str, range]:
    """`IP:HOST[-HOST]:CONTAINER` -> (IP, host ports). Only the IP-bound form is accepted."""
    ip, host, _container = spec.rsplit(":", 2)
    first, _, last = host.partition("-")
    return ip, range(int(first), int(last or first) + 1)


def _schema_errors(validator: Draft7Validator, compose: Compose) -> list[str]:
    errors = validator.iter_errors(compose)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


# ---- the Compose Specification ------------------------------------------------------------


def test_vendored_schema_is_the_draft7_compose_specification() -> None:
    schema = _mapping(json.loads(SCHEMA_FILE.read_text()))
    assert schema["title"] == "Compose Specification"
    assert "draft-07" in schema["$schema"]


def test_compose_file_matches_the_specification(
    validator: Draft7Validator, compose: Compose
) -> None:
    assert _schema_errors(validator, compose) == []


def _unknown_service_key(compose: Compose) -> None:
    compose["services"]["redirector"]["restart_policy"] = "always"  # belongs under deploy:


def _misspelt_condition(compose: Compose) -> None:
    compose["services"]["admin"]["depends_on"]["redis"]["condition"] = "service_heathy"


def _unknown_top_level_key(compose: Compose) -> None:
    compose["service"] = compose["services"]


def _port_as_a_list(compose: Compose) -> None:
    compose["services"]["admin"]["ports"] = [["127.0.0.1", 8081]]


@pytest.mark.parametrize(
    "break_it",
    [_unknown_service_key, _misspelt_condition, _unknown_top_level_key, _port_as_a_list],
    ids=["unknown-service-key", "misspelt-condition", "unknown-top-level-key", "port-as-list"],
)
def test_a_broken_compose_file_is_rejected(
    validator: Draft7Validator, compose: Compose, break_it: Callable[[Compose], None]
) -> None:
    break_it(compose)
    assert _schema_errors(validator, compose) != []


def test_no_obsolete_version_key(compose: Compose) -> None:
    assert "version" not in compose


# ---- redis --------------------------------------------------------------------------------


def test_redis_is_durable_never_evicts_and_keeps_link_buckets_compact(compose: Compose) -> None:
    args = _command(_services(compose)["redis"])
    assert args[0] == "redis-server"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    # The link store's bucket sizing (redirector/store/keys.py) assumes exactly these limits.
    for name, value in REDIS_MEMORY_CONFIG.items():
        assert options[f"--{name}"] == str(value), name


def test_redis_has_a_healthcheck_and_a_named_data_volume(compose: Compose) -> None:
    redis = _services(compose)["redis"]
    assert redis["image"] == "redis:7-alpine"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in compose["volumes"]


# ---- admin and redirector -----------------------------------------------------------------


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_waits_for_a_healthy_redis(compose: Compose, name: str) -> None:
    assert _services(compose)[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


@pytest.mark.parametrize(
    ("name", "prefix", "port"), [("admin", "ADMIN", 8081), ("redirector", "REDIRECTOR", 8080)]
)
def test_app_listens_on_all_interfaces_and_checks_its_own_health(
    compose: Compose, name: str, prefix: str, port: int
) -> None:
    service = _services(compose)[name]
    env = _environment(service)
    assert env[f"{prefix}_HOST"] == "0.0.0.0"
    assert env[f"{prefix}_PORT"] == str(port)
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])


def test_admin_api_keys_come_from_the_operator_environment(compose: Compose) -> None:
    services = _services(compose)
    assert "ADMIN_API_KEYS" in _environment(services["admin"])
    for name, service in services.items():
        value = _environment(service).get("ADMIN_API_KEYS")
        if value is not None:
            assert REQUIRED_API_KEYS.match(value), f"{name}: ADMIN_API_KEYS={value!r}"


def test_redirector_can_be_scaled(compose: Compose) -> None:
    redirector = _services(compose)["redirector"]
    assert "container_name" not in redirector
    assert "ports" in redirector
    # Every container of a scaled service needs a host port of its own.
    for spec in redirector["ports"]:
        assert len(_published(spec)[1]) >= 3, spec


def test_published_ports_are_loopback_only_and_never_collide(compose: Compose) -> None:
    services = _services(compose)
    published = [
        (name, *_published(spec))
        for name, service in services.items()
        for spec in service.get("ports", [])
    ]
    assert published
    for name, ip, _ports in published:
        assert ip == "127.0.0.1", name
    for (a, _, a_ports), (b, _, b_ports) in itertools.combinations(published, 2):
        if not set(a_ports) & set(b_ports):
            continue
        # Docker gives a range's ports out at start-up, skipping taken ones, so a single port
        # inside another service's range is safe only if its service is started first.
        by_size = sorted([(a, a_ports), (b, b_ports)], key=lambda item: len(item[1]))
        (fixed, fixed_ports), (ranged, _) = by_size
        assert len(fixed_ports) == 1, f"{a} and {b} publish overlapping ranges"
        assert fixed in _depends_on(services[ranged]), f"{ranged} may take {fixed}'s port"


# ---- load testing -------------------------------------------------------------------------


def test_locust_runs_only_in_the_load_profile(compose: Compose) -> None:
    services = _services(compose)
    assert set(LOAD_SERVICES) <= set(services)
    for name, service in services.items():
        expected = ["load"] if name in LOAD_SERVICES else None
        assert service.get("profiles") == expected, name


@pytest.mark.parametrize("name", LOAD_SERVICES)
def test_locust_gets_the_loadtests_folder_read_only(compose: Compose, name: str) -> None:
    service = _services(compose)[name]
    assert service["build"]["target"] == "load"
    assert "./loadtests:/app/loadtests:ro" in service["volumes"]
    assert _environment(service)["LOCUST_CODES_FILE"] == "/app/loadtests/codes.txt"
    assert "container_name" not in service


def test_locust_master_drives_the_redirector(compose: Compose) -> None:
    services = _services(compose)
    master = _command(services["locust-master"])
    worker = _command(services["locust-worker"])
    assert master[:3] == ["locust", "-f", "loadtests/locustfile.py"]
    assert "--master" in master
    assert master[master.index("--host") + 1] == "http://redirector:8080"
    assert worker[worker.index("--master-host") + 1] == "locust-master"


# ---- Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def lineage(self, stage: Stage) -> list[Stage]:
        """`stage` and the stages it is built FROM, the root first."""
        names = {s.name for s in self.stages}
        chain = [stage]
        while chain[0].base in names:
            chain.insert(0, self.stage(chain[0].base))
        return chain

    def base_image(self, stage: Stage) -> str:
        base = self.lineage(stage)[0].base
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.global_args.get(m[1], ""), base)

    def user(self, stage: Stage) -> str:
        """The user a stage's processes run as; USER is inherited from a parent stage."""
        users = [i.args for s in self.lineage(stage) for i in s.instructions if i.keyword == "USER"]
        return users[-1] if users else "root"


def _instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return result


def _assigned_names(instruction: Instruction) -> list[str]:
    """The variable names an ENV or ARG instruction sets."""
    tokens = shlex.split(instruction.args)
    if instruction.keyword == "ENV" and tokens and "=" not in tokens[0]:
        return [tokens[0]]  # the legacy `ENV NAME value` form
    return [token.partition("=")[0] for token in tokens]


def _parse_dockerfile(text: str) -> Dockerfile:
    parsed = Dockerfile(global_args={}, stages=[])
    for instruction in _instructions(text):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else ""
            parsed.stages.append(Stage(name or str(len(parsed.stages)), words[0]))
        elif parsed.stages:
            parsed.stages[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            parsed.global_args[name] = default
    return parsed


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return _parse_dockerfile(DOCKERFILE.read_text())


def test_dockerfile_parser_reads_stages_users_and_continuations() -> None:
    parsed = _parse_dockerfile(
        "ARG IMG=python:3.11-slim\n"
        "FROM ${IMG} AS base\n"
        "# USER root  (a comment, not an instruction)\n"
        "ENV A=1 \\\n    B=2\n"
        "USER app\n"
        "FROM base AS final\n"
        "FROM --platform=linux/amd64 busybox\n"
    )
    assert [s.name for s in parsed.stages] == ["base", "final", "2"]
    final = parsed.stage("final")
    assert parsed.base_image(final) == "python:3.11-slim"
    assert parsed.user(final) == "app"
    assert parsed.user(parsed.stages[2]) == "root"
    assert _assigned_names(parsed.stage("base").instructions[0]) == ["A", "B"]


def test_dockerfile_is_multi_stage_on_python_311_slim(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    final = dockerfile.stages[-1]
    assert dockerfile.base_image(final) == "python:3.11-slim"
    copied = [i.args for i in final.instructions if i.keyword == "COPY"]
    assert any(args.startswith("--from=") for args in copied), "the runtime copies the venv"


def test_compose_build_targets_exist_and_run_as_non_root(
    compose: Compose, dockerfile: Dockerfile
) -> None:
    targets = {
        service["build"]["target"] for service in _services(compose).values() if "build" in service
    }
    assert targets == {"app", "load"}
    for stage in [*map(dockerfile.stage, targets), dockerfile.stages[-1]]:
        user = dockerfile.user(stage).partition(":")[0]
        assert user not in {"root", "0"}, f"stage {stage.name} runs as {user}"


def test_default_target_runs_the_redirector(dockerfile: Dockerfile) -> None:
    final = dockerfile.stages[-1]
    by_keyword = {i.keyword: i.args for i in final.instructions}
    assert json.loads(by_keyword["CMD"]) == ["smslinks-redirector"]
    assert {"8080", "8081"} <= set(by_keyword["EXPOSE"].split())


def test_dockerfile_bakes_in_no_secrets_and_leaves_health_checks_to_compose(
    dockerfile: Dockerfile,
) -> None:
    instructions = [i for stage in dockerfile.stages for i in stage.instructions]
    names = [*dockerfile.global_args]
    names += [n for i in instructions if i.keyword in {"ENV", "ARG"} for n in _assigned_names(i)]
    assert names, "the parser found no ENV or ARG at all"
    assert [n for n in names if SECRET_NAME.search(n)] == []
    assert [i for i in instructions if i.keyword == "HEALTHCHECK"] == []
