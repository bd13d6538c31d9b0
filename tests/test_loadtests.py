"""The load-test helpers (codes file, Zipf mix, loopback guard, URL lengths), the seeder
against the real admin app, and the locustfile against the real redirector. Locust itself is
never imported here: its gevent monkey-patching has no place in the test process, so the pure
logic lives in `loadtests.codes` and the locustfile only ever runs in a `locust` subprocess."""

from __future__ import annotations

import asyncio
import csv
import os
import random
import subprocess
import sys
import time
from collections import Counter
from importlib.util import find_spec
from pathlib import Path

import pytest

from admin.tagging import tag, utm_params
from loadtests.codes import (
    CodeLink,
    CodeMix,
    CodesFileError,
    RemoteHostRefused,
    ZipfPicker,
    admin_key,
    allow_remote,
    format_line,
    is_loopback_url,
    load_codes,
    parse_codes,
    recipient,
    require_loopback,
    seed_url,
    utm_suffix,
)
from loadtests.seed import SeedError, main, seed
from tests.conftest import API_KEY, Client

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py"
needs_locust = pytest.mark.skipif(find_spec("locust") is None, reason="locust is not installed")

# -- codes file ------------------------------------------------------------------------------


def test_codes_file_round_trips() -> None:
    lines = [format_line("abc1234", "https://a.example/?x=1"), "\n", "zz\thttps://b.example/\r\n"]
    assert parse_codes(lines) == [
        CodeLink("abc1234", "https://a.example/?x=1"),
        CodeLink("zz", "https://b.example/"),
    ]


@pytest.mark.parametrize("line", ["no-tab", "\thttps://a.example/", "abc\t", "a\tb\tc"])
def test_malformed_line_is_named(line: str) -> None:
    with pytest.raises(CodesFileError, match=r"codes.txt:2: expected 'code<TAB>destination'"):
        parse_codes(["ok\thttps://a.example/", line], "codes.txt")


def test_empty_codes_file_says_how_to_seed() -> None:
    with pytest.raises(CodesFileError, match=r"python -m loadtests\.seed"):
        parse_codes(["\n"])


def test_missing_codes_file_says_how_to_seed(tmp_path: Path) -> None:
    with pytest.raises(CodesFileError, match="not found: seed one"):
        load_codes(tmp_path / "codes.txt")


# -- the Zipf mix ----------------------------------------------------------------------------


def test_zipf_head_is_hot_and_tail_still_drawn() -> None:
    picker, rng = ZipfPicker(1000), random.Random(1)
    counts = Counter(picker.pick(rng) for _ in range(50_000))
    assert min(counts) >= 0 and max(counts) < 1000
    # P(0) = 1 / H(1000) = 0.134 and P(1) is half of it.
    assert 0.12 < counts[0] / 50_000 < 0.15
    assert 1.7 < counts[0] / counts[1] < 2.3
    top_10 = sum(counts[i] for i in range(10)) / 50_000
    assert 0.35 < top_10 < 0.43  # H(10) / H(1000) = 0.39
    assert len(counts) > 700  # the cold tail is reached too


def test_zipf_exponent_zero_is_uniform() -> None:
    picker, rng = ZipfPicker(4, s=0.0), random.Random(2)
    counts = Counter(picker.pick(rng) for _ in range(40_000))
    assert all(9_000 < counts[i] < 11_000 for i in range(4))


def test_zipf_rejects_bad_arguments() -> None:
    assert ZipfPicker(1).pick(random.Random()) == 0
    with pytest.raises(ValueError, match="at least one"):
        ZipfPicker(0)
    with pytest.raises(ValueError, match="negative"):
        ZipfPicker(3, s=-1)


def _links(n: int) -> list[CodeLink]:
    return [CodeLink(f"c{i:06d}", f"https://shop.example/p?r={i}") for i in range(n)]


def test_code_mix_hot_set_is_the_same_in_every_worker() -> None:
    one, two = CodeMix(_links(500)), CodeMix(_links(500))
    assert one.links == two.links
    assert one.links != _links(500)  # shuffled: the first codes seeded are not the hot ones
    rng = random.Random(3)
    assert all(one.pick(rng) is not None for _ in range(1000))


def test_code_mix_unknown_share_and_unknown_codes() -> None:
    mix, rng = CodeMix(_links(100), unknown_share=0.25), random.Random(4)
    unknown = sum(mix.pick(rng) is None for _ in range(20_000))
    assert 4_500 < unknown < 5_500
    codes = {mix.unknown_code(rng) for _ in range(1000)}
    assert not codes & mix.known
    assert {len(code) for code in codes} == {7}
    with pytest.raises(ValueError, match="between 0 and 1"):
        CodeMix(_links(1), unknown_share=1.5)


# -- the loopback guard ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://localhost:8081/",
        "http://LocalHost",
        "http://[::1]:8080",
    ],
)
def test_loopback_urls_are_allowed(url: str) -> None:
    assert is_loopback_url(url)
    require_loopback(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://redirector:8080",
        "https://example.com",
        "http://10.0.0.1",
        "http://0.0.0.0:8080",
        "http://localhost.example.com",
        "http://[::ffff:a00:1]",
        "not a url",
        "",
    ],
)
def test_remote_urls_are_refused_unless_allowed(url: str) -> None:
    assert not is_loopback_url(url)
    with pytest.raises(RemoteHostRefused, match="LOCUST_ALLOW_REMOTE=1"):
        require_loopback(url)
    require_loopback(url, allow_remote=True)


@pytest.mark.parametrize(("value", "allowed"), [("1", True), ("true", True), ("0", False)])
def test_allow_remote_reads_the_environment(value: str, allowed: bool) -> None:
    assert allow_remote({"LOCUST_ALLOW_REMOTE": value}) is allowed
    assert not allow_remote({})


# -- URLs of an exact length, recipients, the key --------------------------------------------


@pytest.mark.parametrize(
    ("campaign", "length"),
    [("loadtest", 90), ("Black Friday 🎉", 130), ("loadtest 2025-01-01 10:00:00", 500)],
)
@pytest.mark.parametrize("index", [0, 7, 99_999])
def test_seed_url_gives_a_destination_of_the_target_length(
    campaign: str, length: int, index: int
) -> None:
    """Checked against the admin's own tagging, so a change of the UTM rule shows up here."""
    suffix = utm_suffix(source="instasent", medium="sms", campaign=campaign)
    url = seed_url(index, length=length, suffix_length=len(suffix))
    destination = tag(url, utm_params(source="instasent", medium="sms", campaign=campaign))
    assert destination.destination == url + suffix
    assert len(destination.destination) == length
    assert url.endswith(f"?r={index}")


def test_seed_url_too_short_for_the_suffix_is_minimal() -> None:
    assert seed_url(5, length=40, suffix_length=60) == "https://shop.example/p?r=5"
    assert seed_url(5, length=90, suffix_length=40).startswith("https://shop.example/abc")


def test_recipients_are_unique_spanish_mobiles() -> None:
    numbers = [recipient(i) for i in (0, 1, 199_999_999)]
    assert numbers == ["+34600000000", "+34600000001", "+34799999999"]
    with pytest.raises(ValueError, match="recipient index"):
        recipient(200_000_000)


def test_admin_key_prefers_the_environment(tmp_path: Path) -> None:
    dev = tmp_path / "dev-api-key"
    dev.write_text("dev-key-0123456789\n")
    assert admin_key({"ADMIN_API_KEYS": " first-key-0123456, second"}, dev) == "first-key-0123456"
    assert admin_key({"ADMIN_API_KEYS": ""}, dev) == "dev-key-0123456789"
    assert admin_key({}, tmp_path / "missing") is None


# -- the seeder against the real admin app ---------------------------------------------------


async def test_seed_creates_the_links_and_writes_the_codes_file(
    admin: Client, tmp_path: Path
) -> None:
    out = tmp_path / "results" / "codes.txt"
    progress: list[int] = []
    result = await seed(
        str(admin.make_url("")),
        API_KEY,
        250,
        batch_size=100,
        concurrency=3,
        campaign_name="Seed test",
        url_length=120,
        out=out,
        progress=progress.append,
    )
    assert (result.links, result.out) == (250, out)
    assert result.seconds > 0 and result.links_per_second > 0
    assert sorted(progress) == [50, 100, 100]

    links = load_codes(out)
    assert len(links) == len({link.code for link in links}) == 250
    for index, (code, destination) in enumerate(links):
        assert len(destination) == 120
        resp = await admin.get(f"/api/links/{code}")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        # Lines are in request order: the index-th line is the index-th recipient's link.
        assert body["destination"] == destination
        assert body["recipient"] == recipient(index)
        assert body["campaign_id"] == result.campaign_id
        assert destination.endswith("&utm_campaign=Seed%20test")


async def test_seed_stops_at_the_first_refusal(admin: Client, tmp_path: Path) -> None:
    out = tmp_path / "codes.txt"
    with pytest.raises(SeedError, match="POST /api/campaigns answered 401"):
        await seed(str(admin.make_url("")), "wrong-key-0123456789", 10, out=out)
    assert not out.exists()


async def test_seed_stops_when_a_batch_is_refused(admin: Client, tmp_path: Path) -> None:
    # Destinations longer than the admin's MAX_URL_LENGTH (4096) fail validation: a 422.
    out = tmp_path / "codes.txt"
    with pytest.raises(SeedError, match="POST /api/links/batch answered 422"):
        await seed(str(admin.make_url("")), API_KEY, 10, url_length=5000, out=out)
    assert not out.exists()


async def test_seed_reports_an_unreachable_admin(unused_tcp_port: int, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    with pytest.raises(SeedError, match="POST /api/campaigns failed: ClientConnectorError"):
        await seed(url, API_KEY, 10, out=tmp_path / "codes.txt")


async def test_seed_refuses_a_remote_admin(tmp_path: Path) -> None:
    with pytest.raises(RemoteHostRefused):
        await seed("http://admin.example.com", API_KEY, 10, out=tmp_path / "codes.txt")


def test_cli_reports_a_refused_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--admin", "http://192.0.2.1:8081", "--key", API_KEY, "--links", "1"]) == 1
    assert "not a loopback address" in capsys.readouterr().err


def test_helpers_and_seeder_do_not_import_locust() -> None:
    """The benchmark and these tests import them; gevent must stay out of those processes."""
    code = "import sys, loadtests.codes, loadtests.seed; print('locust' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


# -- the locustfile, in a locust subprocess, against the real redirector ---------------------


async def _locust(tmp_path: Path, host: str, codes: Path, *args: str) -> tuple[int, str]:
    # Everything the locustfile reads comes from here, never from the developer's .data/.
    env = {
        **os.environ,
        "LOCUST_CODES_FILE": str(codes),
        "LOCUST_UNKNOWN_SHARE": "0.2",
        "ADMIN_API_KEYS": API_KEY,
    }
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
        *("--host", host, "--csv", str(tmp_path / "run"), *args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        # communicate() awaits, so the test servers in this event loop keep answering meanwhile.
        async with asyncio.timeout(60):
            output, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace")


@needs_locust
async def test_locustfile_taps_seeded_links(
    admin: Client, redirector: Client, tmp_path: Path
) -> None:
    codes = tmp_path / "codes.txt"
    await seed(str(admin.make_url("")), API_KEY, 50, batch_size=50, out=codes)
    host = str(redirector.make_url("")).rstrip("/")
    status, output = await _locust(
        tmp_path, host, codes, "Tapper", "-u", "2", "-r", "2", "-t", "2s"
    )
    assert status == 0, output[-3000:]
    rows = csv.DictReader((tmp_path / "run_stats.csv").read_text().splitlines())
    stats = {row["Name"]: row for row in rows}
    for name in ("/[code]", "/[unknown]"):
        assert int(stats[name]["Request Count"]) > 0, output[-3000:]
        assert stats[name]["Failure Count"] == "0", output[-3000:]


@needs_locust
async def test_locustfile_stops_at_once_without_a_codes_file(tmp_path: Path) -> None:
    # Nothing listens on the host: the run must stop before any request is made.
    codes = tmp_path / "missing.txt"
    started = time.monotonic()
    status, output = await _locust(
        tmp_path, "http://127.0.0.1:9", codes, "Tapper", "-u", "1", "-t", "50s"
    )
    assert status == 2, output[-3000:]
    assert time.monotonic() - started < 30  # not after the 50 s of --run-time
    assert f"codes file {codes} not found" in output
