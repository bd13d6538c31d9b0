"""Settings: exact names and defaults, and a clear stop on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from admin.settings import AdminSettings
from redirector.settings import Settings, SettingsError

KEY = "k" * 16


def test_redirector_defaults() -> None:
    s = Settings.from_env({})
    assert (s.redis_url, s.host, s.port, s.workers) == (
        "redis://127.0.0.1:6379/0",
        "127.0.0.1",
        8080,
        1,
    )


def test_admin_defaults() -> None:
    s = AdminSettings.from_env({"ADMIN_API_KEYS": KEY})
    assert s.api_keys == (KEY,)
    assert (s.host, s.port, s.public_base_url) == ("127.0.0.1", 8081, "http://127.0.0.1:8080")
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
            "PUBLIC_BASE_URL": "https://SMS.Shop.example/",
            "UTM_SOURCE": "crm",
            "UTM_MEDIUM": "text",
            "CODE_LENGTH": "9",
            "MAX_URL_LENGTH": "2048",
        }
    )
    assert s.api_keys == (KEY, "x" * 20)
    assert s.public_base_url == "https://SMS.Shop.example"
    assert s.own_host == "sms.shop.example"
    assert s.short_url("abc") == "https://SMS.Shop.example/abc"
    assert (s.redis_url, s.host, s.port) == ("redis://r:6379/2", "0.0.0.0", 9000)
    assert (s.utm_source, s.utm_medium, s.code_length, s.max_url_length) == (
        "crm",
        "text",
        9,
        2048,
    )


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ADMIN_API_KEYS": ""}, "ADMIN_API_KEYS"),
        ({"ADMIN_API_KEYS": " , "}, "ADMIN_API_KEYS"),
        ({"ADMIN_API_KEYS": "short"}, "ADMIN_API_KEYS"),
        ({"ADMIN_PORT": "http"}, "ADMIN_PORT"),
        ({"ADMIN_PORT": "70000"}, "ADMIN_PORT"),
        ({"CODE_LENGTH": "2"}, "CODE_LENGTH"),
        ({"MAX_URL_LENGTH": "-1"}, "MAX_URL_LENGTH"),
        ({"PUBLIC_BASE_URL": "sho.rt"}, "PUBLIC_BASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"UTM_SOURCE": "  "}, "UTM_SOURCE"),
    ],
)
def test_admin_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    full = {"ADMIN_API_KEYS": KEY} | env
    with pytest.raises(SettingsError, match=name):
        AdminSettings.from_env(full)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"REDIRECTOR_PORT": "0"}, "REDIRECTOR_PORT"),
        ({"REDIRECTOR_WORKERS": "many"}, "REDIRECTOR_WORKERS"),
        ({"CACHE_TTL": "-5"}, "CACHE_TTL"),
        ({"ACCESS_LOG": "maybe"}, "ACCESS_LOG"),
        ({"REDIRECTOR_HOST": ""}, "REDIRECTOR_HOST"),
    ],
)
def test_redirector_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("module", "env", "message"),
    [
        ("admin", {}, "admin: ADMIN_API_KEYS is not set"),
        ("redirector", {"REDIRECTOR_PORT": "x"}, "redirector: REDIRECTOR_PORT must be"),
    ],
)
def test_entry_points_refuse_to_start(module: str, env: dict[str, str], message: str) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in {"ADMIN_API_KEYS"}} | env
    proc = subprocess.run(
        [sys.executable, "-m", module], env=clean, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert message in proc.stderr
