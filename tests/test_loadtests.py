"""The load-test helpers, the seeder against the real admin app, and the locustfile against the
real redirector, in a `locust` subprocess: gevent's monkey-patching stays out of this one."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from admin.tagging import tag, utm_params
from loadtests import codes as codes_file
from loadtests import pick_user_agents
from loadtests import seed as seeder
from loadtests.codes import CodeLink, CodeMix, CodesFileError, ZipfPicker
from loadtests.user_agents import UserAgent, format_line, load_user_agents
from redirector.settings import Settings
from tests.conftest import API_KEY, Client
from tests.user_agents import ANDROID, IPHONE
from tests.waiting import eventually

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py"
needs_locust = pytest.mark.skipif(find_spec("locust") is None, reason="locust is not installed")


def test_codes_file_round_trips_and_says_how_to_seed(tmp_path: Path) -> None:
    line = codes_file.format_line("abc1234", "https://a.example/?x=1")
    lines = [line, "\n", "zz\thttps://b.example/\r\n"]
    assert codes_file.parse_codes(lines) == [
        CodeLink("abc1234", "https://a.example/?x=1"),
        CodeLink("zz", "https://b.example/"),
    ]
    with pytest.raises(CodesFileError, match=r"python -m loadtests\.seed"):
        codes_file.parse_codes(["\n"])
    with pytest.raises(CodesFileError, match="not found: seed one"):
        codes_file.load_codes(tmp_path / "codes.txt")


@pytest.mark.parametrize("line", ["no-tab", "\thttps://a.example/", "abc\t", "a\tb\tc"])
def test_malformed_line_is_named(line: str) -> None:
    with pytest.raises(CodesFileError, match=r"codes.txt:2: expected 'code<TAB>destination'"):
        codes_file.parse_codes(["ok\thttps://a.example/", line], "codes.txt")


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


def test_zipf_exponent_zero_is_uniform_and_bad_arguments_are_refused() -> None:
    picker, rng = ZipfPicker(4, exponent=0.0), random.Random(2)
    counts = Counter(picker.pick(rng) for _ in range(40_000))
    assert all(9_000 < counts[i] < 11_000 for i in range(4))
    assert ZipfPicker(1).pick(random.Random()) == 0
    with pytest.raises(ValueError, match="at least one"):
        ZipfPicker(0)
    with pytest.raises(ValueError, match="negative"):
        ZipfPicker(3, exponent=-1)


def _links(n: int) -> list[CodeLink]:
    return [CodeLink(f"c{i:06d}", f"https://shop.example/p?r={i}") for i in range(n)]


def test_code_mix_shares_its_hot_set_and_mixes_in_unknown_codes() -> None:
    one, two = CodeMix(_links(500)), CodeMix(_links(500))
    assert one.links == two.links  # the same hot set in every worker
    assert one.links != _links(500)  # shuffled: the first codes seeded are not the hot ones
    rng = random.Random(3)
    assert all(one.pick(rng) is not None for _ in range(1000))
    mix = CodeMix(_links(100), unknown_share=0.25)
    assert 4_500 < sum(mix.pick(rng) is None for _ in range(20_000)) < 5_500
    codes = {mix.unknown_code(rng) for _ in range(1000)}
    assert not codes & mix.known
    assert {len(code) for code in codes} == {7}
    with pytest.raises(ValueError, match="between 0 and 1"):
        CodeMix(_links(1), unknown_share=1.5)


def test_user_agents_file_round_trips_and_names_a_bad_line(tmp_path: Path) -> None:
    phone = UserAgent("mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_3 like Mac OS X) ...")
    (path := tmp_path / "agents.txt").write_text(f"# header\n\n{format_line(phone)}")
    assert load_user_agents(path) == [phone]
    path.write_text(f"{format_line(phone)}no tab\n")
    with pytest.raises(ValueError, match=r"agents.txt:2: expected 'device<TAB>User-Agent'"):
        load_user_agents(path)


@pytest.mark.parametrize(
    ("user_agent", "kept"),
    [
        (IPHONE, True),
        (ANDROID, True),  # Chrome's reduced User-Agent: 120.0.0.0
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/83.0.4103.106 Mobile Safari/537.36",
            True,
        ),
        # A device emulator's: no iOS browser runs Blink, and Chrome 44 was build 2403.
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 11_0 like Mac OS X) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/44.0.5213.1363 Mobile Safari/537.36",
            False,
        ),
        (
            "Mozilla/5.0 (Linux; Android 8.0; Pixel 2 Build/OPD3.170816.012) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/39.0.5891.1666 Mobile Safari/537.36",
            False,
        ),
    ],
)
def test_the_mix_leaves_out_strings_no_real_browser_sends(user_agent: str, kept: bool) -> None:
    assert pick_user_agents.plausible(user_agent) is kept


LOCAL = ["http://127.0.0.1:8080", "http://127.1.2.3", "http://LocalHost", "http://[::1]:8080"]
REMOTE = ["http://redirector:8080", "https://example.com", "http://10.0.0.1", "http://0.0.0.0"]
REMOTE += ["http://localhost.example.com", "http://[::ffff:a00:1]", "not a url", ""]


@pytest.mark.parametrize("url", LOCAL + REMOTE)
def test_only_this_machine_is_a_target_unless_remote_is_allowed(url: str) -> None:
    assert seeder.is_loopback_url(url) is (url in LOCAL)
    if url in REMOTE:
        with pytest.raises(seeder.RemoteHostRefused, match="LOCUST_ALLOW_REMOTE=1"):
            seeder.require_loopback(url)
    seeder.require_loopback(url, allow_remote=url in REMOTE)


@pytest.mark.parametrize(("value", "allowed"), [("1", True), ("true", True), ("0", False)])
def test_allow_remote_reads_the_environment(value: str, allowed: bool) -> None:
    assert seeder.allow_remote({"LOCUST_ALLOW_REMOTE": value}) is allowed
    assert not seeder.allow_remote({})


@pytest.mark.parametrize(
    ("campaign", "length"),
    [("loadtest", 90), ("bench", 135), ("Black Friday 🎉", 130), ("loadtest 2025-01-01", 500)],
)
def test_link_plan_gives_a_destination_of_the_target_length(campaign: str, length: int) -> None:
    """Checked against the admin's own tagging, so a change of the UTM rule shows up here."""
    plan = seeder.LinkPlan(length, campaign)
    tagged = tag(plan.url, utm_params(source="instasent", medium="sms", campaign=campaign))
    assert tagged.destination == plan.destination
    assert len(plan.destination) == length


def test_link_plan_too_short_for_the_suffix_is_minimal() -> None:
    assert seeder.LinkPlan(40).url == "https://shop.example/p?ref=sms"
    assert seeder.LinkPlan(200).url.startswith("https://shop.example/abc")


def test_a_batch_gives_the_url_once_and_one_recipient_per_item() -> None:
    body = seeder.batch_body(7, "https://shop.example/p", range(10_000, 10_003))
    assert body == {
        "campaign_id": 7,
        "url": "https://shop.example/p",
        "links": [{"recipient": seeder.recipient(i)} for i in (10_000, 10_001, 10_002)],
    }


def test_recipients_are_unique_spanish_mobiles() -> None:
    numbers = [seeder.recipient(i) for i in (0, 1, 199_999_999)]
    assert numbers == ["+34600000000", "+34600000001", "+34799999999"]
    with pytest.raises(ValueError, match="recipient index"):
        seeder.recipient(200_000_000)


def test_admin_key_prefers_the_environment(tmp_path: Path) -> None:
    dev = tmp_path / "dev-api-key"
    dev.write_text("dev-key-0123456789\n")
    assert seeder.admin_key(" first-key-0123456, second-key-0123456", dev) == "first-key-0123456"
    assert seeder.admin_key(" ", dev) == "dev-key-0123456789"
    with pytest.raises(seeder.SeedError, match="no admin key: set ADMIN_API_KEYS"):
        seeder.admin_key("", tmp_path / "missing")
    # Keys the admin would refuse are refused here too, with the admin's reason.
    with pytest.raises(seeder.SeedError, match="ADMIN_API_KEYS needs 16"):
        seeder.admin_key("first-key-0123456, second", dev)


async def test_seed_creates_the_links_and_writes_the_codes_file(
    admin: Client, tmp_path: Path
) -> None:
    url, out, progress = str(admin.make_url("")), tmp_path / "results" / "codes.txt", list[int]()
    options: dict[str, Any] = {"batch_size": 100, "concurrency": 3, "url_length": 120}
    options |= {"campaign_name": "Seed test", "out": out, "progress": progress.append}
    result = await seeder.seed(url, API_KEY, 250, **options)
    assert (len(result.codes), result.out) == (250, out)
    assert result.seconds > 0 and result.links_per_second > 0
    assert len(progress) == 3 and progress[-1] == 250  # links created so far, batch by batch

    links = codes_file.load_codes(out)
    assert [code for code, _ in links] == result.codes and len(set(result.codes)) == 250
    destinations = {destination for _, destination in links}  # one URL, as a send has
    assert destinations == {seeder.LinkPlan(120, "Seed test").destination}
    assert len(destinations.pop()) == 120
    for index, (code, destination) in enumerate(links):
        resp = await admin.get(f"/api/links/{code}")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        # Lines are in request order: the index-th line is the index-th recipient's link.
        assert body["destination"] == destination
        assert body["recipient"] == seeder.recipient(index)
        assert body["campaign_id"] == result.campaign_id
        assert destination.endswith("&utm_campaign=Seed%20test")


async def test_shared_links_are_the_campaigns_links_without_recipient(admin: Client) -> None:
    url = str(admin.make_url(""))
    seeded = await seeder.seed(url, API_KEY, 3, campaign_name="Hot", url_length=100, out=None)
    plan = seeder.LinkPlan(100, "Hot")
    codes = await seeder.shared_links(url, API_KEY, seeded.campaign_id, plan.url, 5)
    assert len(set(codes)) == 5 and not set(codes) & set(seeded.codes)
    for code in codes:
        body = await (await admin.get(f"/api/links/{code}")).json()
        assert body["recipient"] is None and body["campaign_id"] == seeded.campaign_id
        assert body["destination"] == plan.destination
    with pytest.raises(seeder.RemoteHostRefused):
        await seeder.shared_links("http://192.0.2.1:8081", API_KEY, seeded.campaign_id, url, 1)


@pytest.mark.parametrize(
    ("key", "url_length", "refused"),
    [
        ("wrong-key-0123456789", 90, "POST /api/campaigns answered 401"),
        # Destinations longer than the admin's MAX_URL_LENGTH (4096) fail validation.
        (API_KEY, 5000, "POST /api/links/batch answered 422"),
    ],
)
async def test_seed_stops_at_the_first_refusal(
    admin: Client, tmp_path: Path, key: str, url_length: int, refused: str
) -> None:
    out = tmp_path / "codes.txt"
    with pytest.raises(seeder.SeedError, match=refused):
        await seeder.seed(str(admin.make_url("")), key, 10, url_length=url_length, out=out)
    assert not out.exists() and not out.with_name("codes.txt.partial").exists()


async def test_seed_reports_an_unreachable_or_remote_admin(unused_tcp_port: int) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    with pytest.raises(seeder.SeedError, match="/api/campaigns failed: ClientConnectorError"):
        await seeder.seed(url, API_KEY, 10, out=None)
    with pytest.raises(seeder.RemoteHostRefused):
        await seeder.seed("http://admin.example.com", API_KEY, 10, out=None)


def test_cli_reports_a_refused_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert seeder.main(["--admin", "http://192.0.2.1:8081", "--key", API_KEY]) == 1
    assert "not a loopback address" in capsys.readouterr().err


def test_helpers_and_seeder_do_not_import_locust() -> None:
    """The benchmark and these tests import them; gevent must stay out of those processes."""
    code = "import sys, loadtests.codes, loadtests.seed; print('locust' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


async def _locust(tmp_path: Path, host: str, codes: Path, *args: str) -> tuple[int, str]:
    # Everything the locustfile reads comes from here, never from the developer's .data/.
    env = {**os.environ, "LOCUST_CODES_FILE": str(codes), "LOCUST_UNKNOWN_SHARE": "0.2"}
    env["ADMIN_API_KEYS"] = API_KEY
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", *args]
    # The final stats: the CSV files are only rewritten every second, so a short run's may
    # be stale.
    command += ["--host", host, "--json-file", str(tmp_path / "run")]
    # In a thread, so that the test servers in this event loop keep answering meanwhile.
    run = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return run.returncode, run.stdout + run.stderr


@pytest.fixture
def redirector_settings(redirector_settings: Settings) -> Settings:
    """A load run taps unknown codes from one address: no REDIRECTOR_MISS_LIMIT for it."""
    return redirector_settings.model_copy(update={"miss_limit": 0})


@needs_locust
async def test_locustfile_taps_seeded_links(
    admin: Client, redirector: Client, tmp_path: Path
) -> None:
    codes = tmp_path / "codes.txt"
    seeded = await seeder.seed(str(admin.make_url("")), API_KEY, 50, batch_size=50, out=codes)
    host = str(redirector.make_url("")).rstrip("/")
    status, output = await _locust(tmp_path, host, codes, "Tapper", "-u2", "-r2", "-t2s")
    assert status == 0, output[-3000:]
    entries = json.loads((tmp_path / "run.json").read_text())
    stats = {entry["name"]: entry for entry in entries}
    for name in ("/[code]", "/[unknown]"):
        assert name in stats and stats[name]["num_requests"] > 0, output[-3000:]
        assert stats[name]["num_failures"] == 0, output[-3000:]

    # Every tap of a known code is a click: the tapper sends phones' User-Agents, not its
    # library's. Up to one per user may have been served but not counted when Locust stopped.
    taps = int(stats["/[code]"]["num_requests"])
    path = f"/api/campaigns/{seeded.campaign_id}/stats"
    recorded: dict[str, Any] = {}

    async def flushed() -> bool:
        recorded.update(await (await admin.get(path)).json())
        return int(recorded["clicks"]) + int(recorded["bot_hits"]) >= taps

    await eventually(flushed)
    assert recorded["bot_hits"] == 0 and taps <= recorded["clicks"] <= taps + 2, recorded
    assert len(recorded["breakdowns"]["browser"]) > 1  # the mix, not one string


@needs_locust
async def test_locustfile_stops_at_once_without_a_codes_file(tmp_path: Path) -> None:
    # Nothing listens on the host: the run must stop before any request is made.
    codes = tmp_path / "missing.txt"
    started = time.monotonic()
    status, output = await _locust(tmp_path, "http://127.0.0.1:9", codes, "Tapper", "-u1", "-t50s")
    assert status == 2, output[-3000:]
    assert time.monotonic() - started < 30  # not after the 50 s of --run-time
    assert f"codes file {codes} not found" in output
