"""Settings: exact names and defaults, blank means unset, and a clear stop on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import pytest
from pydantic import Field

from admin.settings import AdminSettings
from redirector.clickworker import WORKER_REDIS_TIMEOUT
from redirector.settings import Settings
from redirector.store.connection import Durability, SettingsError, StoreSettings

KEY = "k" * 16
REDIRECTOR_VARIABLES = [
    "REDIS_URL",
    "REDIRECTOR_HOST",
    "REDIRECTOR_PORT",
    "CACHE_TTL",
    "ACCESS_LOG",
]
ADMIN_VARIABLES = ["REDIS_URL", "ADMIN_HOST", "ADMIN_PORT", "PUBLIC_BASE_URL", "UTM_SOURCE"]


def test_redirector_defaults() -> None:
    s = Settings.from_env({})
    assert (s.redis_url, s.host, s.port, s.workers) == (
        "redis://127.0.0.1:6379/0",
        "127.0.0.1",
        8080,
        1,
    )


def test_redirector_limits_and_metrics_port() -> None:
    s = Settings.from_env({})
    assert (s.header_timeout, s.max_connections, s.miss_limit, s.metrics_port) == (
        10.0,
        10_000,
        100,
        None,
    )
    s = Settings.from_env(
        {
            "REDIRECTOR_HEADER_TIMEOUT": "2.5",
            "REDIRECTOR_MAX_CONNECTIONS": "1000",
            "REDIRECTOR_MISS_LIMIT": "0",
            "METRICS_PORT": "9180",
        }
    )
    assert (s.header_timeout, s.max_connections, s.miss_limit, s.metrics_port) == (
        2.5,
        1000,
        0,
        9180,
    )


def test_a_click_write_waits_for_replicas_as_a_link_write_within_its_command_timeout() -> None:
    on_cluster = Settings.from_env(
        {"REDIS_CLUSTER": "true", "REDIS_TIMEOUT": "0.5", "REDIS_WAIT_TIMEOUT": "4000"}
    )
    assert on_cluster.durability == Durability(1, 4000)
    assert on_cluster.flush_durability == Durability(1, 250)  # the redirect process's push
    # A click worker's claims and counts, on its own connection's timeout (5 s).
    assert on_cluster.durability.within(WORKER_REDIS_TIMEOUT) == Durability(1, 2500)
    assert Settings.from_env({}).flush_durability.replicas == 0
    assert Settings.from_env({}).click_workers == 1


def test_admin_defaults() -> None:
    s = AdminSettings.from_env({"ADMIN_API_KEYS": KEY})
    assert s.api_keys == (KEY,)
    assert (s.host, s.port, s.public_base_url) == ("127.0.0.1", 8081, "http://127.0.0.1:8080")
    assert s.workers == 1
    assert s.rate_limit == 600
    assert (s.utm_source, s.utm_medium, s.code_length, s.max_url_length) == (
        "instasent",
        "sms",
        7,
        4096,
    )
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.own_host == "127.0.0.1"


def test_admin_reads_every_variable() -> None:
    s = AdminSettings.from_env(
        {
            "ADMIN_API_KEYS": f" {KEY} , {'x' * 20},",
            "REDIS_URL": "redis://r:6379/2",
            "ADMIN_HOST": "0.0.0.0",
            "ADMIN_PORT": "9000",
            "ADMIN_WORKERS": "4",
            "PUBLIC_BASE_URL": "https://SMS.Shop.example/",
            "UTM_SOURCE": "crm",
            "UTM_MEDIUM": "text",
            "CODE_LENGTH": "9",
            "MAX_URL_LENGTH": "2048",
            "ADMIN_RATE_LIMIT": "0",
        }
    )
    assert s.api_keys == (KEY, "x" * 20)
    assert s.rate_limit == 0
    assert s.public_base_url == "https://SMS.Shop.example"
    assert s.own_host == "sms.shop.example"
    assert s.short_url("abc") == "https://SMS.Shop.example/abc"
    assert (s.redis_url, s.host, s.port, s.workers) == ("redis://r:6379/2", "0.0.0.0", 9000, 4)
    assert (s.utm_source, s.utm_medium, s.code_length, s.max_url_length) == (
        "crm",
        "text",
        9,
        2048,
    )


@pytest.mark.parametrize(
    ("settings", "env", "message"),
    [
        (AdminSettings, {"ADMIN_API_KEYS": "short"}, "ADMIN_API_KEYS needs 16+ characters"),
        (AdminSettings, {"ADMIN_PORT": "http"}, "ADMIN_PORT must be a whole number, got 'http'"),
        (AdminSettings, {"ADMIN_PORT": "70000"}, "ADMIN_PORT must be between 1 and 65535"),
        (AdminSettings, {"ADMIN_WORKERS": "0"}, "ADMIN_WORKERS must be between 1 and 64, got 0"),
        (AdminSettings, {"ADMIN_WORKERS": "2.5"}, "ADMIN_WORKERS must be a whole number"),
        (AdminSettings, {"ADMIN_RATE_LIMIT": "-1"}, "ADMIN_RATE_LIMIT must be between 0 and"),
        (AdminSettings, {"CODE_LENGTH": "2"}, "CODE_LENGTH must be between 5 and 32, got 2"),
        (AdminSettings, {"MAX_URL_LENGTH": "-1"}, "MAX_URL_LENGTH must be between 64 and"),
        (AdminSettings, {"PUBLIC_BASE_URL": "sho.rt"}, "PUBLIC_BASE_URL must be an http(s) URL"),
        (AdminSettings, {"REDIS_URL": "http://x"}, "REDIS_URL must be a redis://, rediss://"),
        (Settings, {"REDIRECTOR_PORT": "0"}, "REDIRECTOR_PORT must be between 1 and 65535, got 0"),
        (Settings, {"REDIRECTOR_PORT": "70000"}, "REDIRECTOR_PORT must be between 1 and 65535"),
        (Settings, {"REDIRECTOR_PORT": "x"}, "REDIRECTOR_PORT must be a whole number, got 'x'"),
        (Settings, {"REDIRECTOR_WORKERS": "many"}, "REDIRECTOR_WORKERS must be a whole number"),
        (Settings, {"CACHE_TTL": "-5"}, "CACHE_TTL must be between 0.0 and 86400.0, got -5"),
        (Settings, {"CACHE_TTL": "soon"}, "CACHE_TTL must be a number, got 'soon'"),
        (Settings, {"CLICK_DRAIN_TIMEOUT": "601"}, "CLICK_DRAIN_TIMEOUT must be between 0.0 and"),
        (Settings, {"CLICK_WORKERS": "17"}, "CLICK_WORKERS must be between 0 and 16, got 17"),
        (Settings, {"CLICK_WORKER_LEASE": "0"}, "CLICK_WORKER_LEASE must be between 0.1 and"),
        (Settings, {"METRICS_PORT": "0"}, "METRICS_PORT must be between 1 and 65535, got 0"),
        (Settings, {"REDIRECTOR_MAX_CONNECTIONS": "0"}, "REDIRECTOR_MAX_CONNECTIONS must be"),
        (Settings, {"REDIRECTOR_HEADER_TIMEOUT": "0"}, "REDIRECTOR_HEADER_TIMEOUT must be"),
        (Settings, {"REDIRECTOR_MISS_LIMIT": "-1"}, "REDIRECTOR_MISS_LIMIT must be between 0"),
        (Settings, {"ACCESS_LOG": "maybe"}, "ACCESS_LOG must be true or false, got 'maybe'"),
        (Settings, {"REDIS_URL": "http://x"}, "REDIS_URL must be a redis://, rediss:// or unix://"),
        (
            Settings,
            {"REDIRECTOR_WORKERS": "0", "CACHE_SIZE": "-1"},
            "REDIRECTOR_WORKERS must be between 1 and 64, got 0; CACHE_SIZE must be between",
        ),
    ],
)
def test_a_bad_value_stops_with_one_line_naming_the_variable(
    settings: type[StoreSettings], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings.from_env({"ADMIN_API_KEYS": KEY} | env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


class _Bounded(StoreSettings):
    at_least: Annotated[int, Field(ge=1)] = 1
    below: Annotated[float, Field(lt=10.0)] = 0.0
    inside: Annotated[int, Field(gt=0, le=5)] = 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AT_LEAST": "0"}, "AT_LEAST must be at least 1, got 0"),
        ({"BELOW": "10"}, "BELOW must be less than 10.0, got 10"),
        ({"INSIDE": "0"}, "INSIDE must be more than 0 and at most 5, got 0"),
        ({"INSIDE": "6"}, "INSIDE must be more than 0 and at most 5, got 6"),
    ],
)
def test_a_range_is_said_in_the_bounds_it_has(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        _Bounded.from_env(env)
    assert str(caught.value) == message


@pytest.mark.parametrize("blank", ["", "  ", "\t"])
def test_a_blank_variable_is_unset(blank: str) -> None:
    assert Settings.from_env(dict.fromkeys(REDIRECTOR_VARIABLES, blank)) == Settings()
    admin_env = dict.fromkeys(ADMIN_VARIABLES, blank) | {"ADMIN_API_KEYS": KEY}
    assert AdminSettings.from_env(admin_env) == AdminSettings(api_keys=(KEY,))


@pytest.mark.parametrize("blank", ["", "  ", " , "])
def test_a_blank_required_variable_is_not_set(blank: str) -> None:
    with pytest.raises(SettingsError, match=r"^ADMIN_API_KEYS is not set: give one or more"):
        AdminSettings.from_env({"ADMIN_API_KEYS": blank})


def test_values_are_trimmed_and_keys_are_not_echoed() -> None:
    trimmed = Settings.from_env({"REDIRECTOR_PORT": " 9000 ", "ACCESS_LOG": " on "})
    assert (trimmed.port, trimmed.access_log) == (9000, True)
    with pytest.raises(SettingsError) as caught:
        AdminSettings.from_env({"ADMIN_API_KEYS": f"{KEY},short-secret"})
    assert "short-secret" not in str(caught.value)


def test_only_the_exact_variable_names_are_read() -> None:
    assert Settings.from_env({"redis_url": "http://x", "port": "1", "PORT": "1"}) == Settings()


def test_constructing_settings_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REDIRECTOR_VARIABLES + ADMIN_VARIABLES:
        monkeypatch.setenv(name, "bad")
    assert Settings().port == 8080
    assert AdminSettings(api_keys=(KEY,)).redis_url == "redis://127.0.0.1:6379/0"


def test_the_admin_imports_only_the_store_and_reads_nothing_on_import() -> None:
    """With no keys and a bad REDIS_URL, importing the admin entry point still succeeds."""
    code = "import admin.__main__, sys; print(*(m for m in sys.modules if 'redirector' in m))"
    proc = _python(["-c", code], {"REDIS_URL": "http://x"})
    assert proc.returncode == 0, proc.stderr
    assert {m.partition(".store")[0] for m in proc.stdout.split()} == {"redirector"}


def _python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Python in a subprocess, with this environment less ADMIN_API_KEYS, plus `env`."""
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_API_KEYS"} | env
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (["admin"], {}, "admin: ADMIN_API_KEYS is not set"),
        (
            ["admin", "--workers", "65"],
            {"ADMIN_API_KEYS": KEY, "ADMIN_WORKERS": "2"},
            "admin: ADMIN_WORKERS must be between 1 and 64, got 65",
        ),
        (["redirector"], {"REDIRECTOR_PORT": "x"}, "redirector: REDIRECTOR_PORT must be"),
        (
            ["redirector", "--workers", "65"],
            {"REDIRECTOR_WORKERS": "2"},
            "redirector: REDIRECTOR_WORKERS must be between 1 and 64, got 65",
        ),
    ],
)
def test_entry_points_refuse_to_start(
    command: list[str], env: dict[str, str], message: str
) -> None:
    proc = _python(["-m", *command], env)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
