"""How `loadtests/user_agents.txt` was made: real-world User-Agent strings picked from two PyPI
packages that ship collected ones (run once by hand; the file is what the load tests read):

    pip download --no-deps -d /tmp/ua fake-useragent==2.2.0
    pip download --no-deps --no-binary :all: -d /tmp/ua device-detector==6.5.1
    (cd /tmp/ua && unzip -q fake_useragent-*.whl && tar xzf device_detector-*.tar.gz)
    python -m loadtests.pick_user_agents /tmp/ua > loadtests/user_agents.txt

- fake-useragent's `data/browsers.jsonl`: browsers seen by real visitors (Intoli's data set),
  each with a device type and its share of the traffic; the most frequent of each type first.
- device-detector's test fixtures (`tests/fixtures/upstream/*.yml`, Matomo Device Detector's
  collection of real strings with their device type): the in-app browsers that open a shared
  link (Facebook, Instagram, Messenger, TikTok, Snapchat, X, Threads, Line, Pinterest) and
  Samsung Internet, which the first source barely has, and Chrome on recent Android phones to
  fill up.

Both sources also hold strings that no real browser sends (device emulators and scrapers with
made-up Chrome versions, iPhones without Apple's WebKit): `plausible` leaves those out.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from loadtests.user_agents import HEADER_MARK, UserAgent, format_line

# The mix: 80% phones, 5% tablets, 15% computers, 500 in all.
PHONES, TABLETS, DESKTOPS = 400, 25, 75
IN_APP_PER_APP, SAMSUNG_PHONES = 10, 30
IN_APP_MARKERS = {
    "Facebook": r"FBAN/FBIOS|FB_IAB/FB4A",
    "Messenger": r"FBAN/MessengerForiOS|FB_IAB/Orca",
    "Instagram": r"Instagram \d",
    "TikTok": r"musical_ly|trill_\d|BytedanceWebview",
    "Snapchat": r"Snapchat/\d",
    "X": r"Twitter",
    "Threads": r"Barcelona \d",
    "Line": r"Line/\d",
    "Pinterest": r"\[Pinterest/",
}
_CHROME = re.compile(r"Chrome/(\d+)\.0\.(\d+)\.(\d+)")
_PLAIN_CHROME = re.compile(r"Android.*\) Chrome/[\d.]+ Mobile Safari/537\.36$")
_OS_VERSION = re.compile(r"(?:iPhone OS|CPU OS|Android) (\d+)")


def plausible(user_agent: str) -> bool:
    """Every iOS browser is Apple's WebKit; a Chrome build number grows with its major version
    (about 52 per version: 39 -> 2171, 120 -> 6099), or is 0.0 in the reduced UA of 100+."""
    if re.search(r"iPhone|iPad", user_agent) and "AppleWebKit/605" not in user_agent:
        return False
    if chrome := _CHROME.search(user_agent):
        major, build, patch = map(int, chrome.groups())
        reduced = build == patch == 0 and major >= 100
        return reduced or 40 * major <= build <= 65 * major
    return True


def recent(user_agent: str) -> bool:
    """iOS 14+ or Android 10+: what phones run today."""
    version = _OS_VERSION.search(user_agent)
    minimum = 10 if "Android" in user_agent else 14
    return version is not None and int(version.group(1)) >= minimum


def fake_useragent(root: Path) -> dict[str, list[str]]:
    """Plausible strings by device type, the most frequent first."""
    share: dict[tuple[str, str], float] = {}
    for path in root.glob("**/fake_useragent/data/browsers.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            key = (row["type"], row["useragent"])
            share[key] = max(share.get(key, 0.0), float(row["percent"]))
    ranked = sorted(share, key=lambda key: (-share[key], key[1]))
    by_type: dict[str, list[str]] = {"mobile": [], "tablet": [], "desktop": []}
    for kind, user_agent in ranked:
        if plausible(user_agent):
            by_type[kind].append(user_agent)
    return by_type


def matomo_fixtures(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(device type, fixture) of every browser fixture, bots left out."""
    for path in sorted(root.glob("**/tests/fixtures/upstream/*.yml")):
        if path.stem in ("bots", "clienthints", "clienthints-app"):
            continue
        for fixture in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if isinstance(fixture, dict) and "user_agent" in fixture:
                yield str((fixture.get("device") or {}).get("type")), fixture


def sample(user_agents: Iterable[str], count: int, taken: set[str]) -> list[str]:
    """`count` of them not taken yet, drawn with a fixed seed (the fixtures are unordered)."""
    pool = sorted(set(user_agents) - taken)
    picked = random.Random(0).sample(pool, min(count, len(pool)))
    taken.update(picked)
    return picked


def pick(root: Path) -> list[UserAgent]:
    traffic = fake_useragent(root)
    phones: list[str] = []
    tablets: list[str] = []
    for device, fixture in matomo_fixtures(root):
        user_agent = str(fixture["user_agent"])
        if not (user_agent.startswith("Mozilla/5.0") and plausible(user_agent)):
            continue
        # An Android phone's browser says "Mobile"; a string without it reads as a tablet's.
        phone = "Android" not in user_agent or "Mobile" in user_agent
        if recent(user_agent) and device in ("smartphone", "phablet") and phone:
            phones.append(user_agent)
        elif recent(user_agent) and device == "tablet":
            tablets.append(user_agent)
    mobile = traffic["mobile"][:PHONES]
    taken = set(mobile)
    for marker in IN_APP_MARKERS.values():
        mobile += sample((ua for ua in phones if re.search(marker, ua)), IN_APP_PER_APP, taken)
    mobile += sample((ua for ua in phones if "SamsungBrowser/" in ua), SAMSUNG_PHONES, taken)
    android_chrome = (ua for ua in phones if _PLAIN_CHROME.search(ua) and "; wv)" not in ua)
    mobile += sample(android_chrome, PHONES - len(mobile), taken)
    tablet = traffic["tablet"][:TABLETS]
    tablet += sample(tablets, TABLETS - len(tablet), taken | set(tablet))
    desktop = traffic["desktop"][:DESKTOPS]
    return [
        *(UserAgent("mobile", ua) for ua in mobile[:PHONES]),
        *(UserAgent("tablet", ua) for ua in tablet),
        *(UserAgent("desktop", ua) for ua in desktop),
    ]


def main(argv: list[str]) -> None:
    picked = pick(Path(argv[0]))
    counts = {kind: sum(ua.device == kind for ua in picked) for kind in ("mobile", "tablet")}
    sys.stdout.write(
        f"{HEADER_MARK} {len(picked)} real-world User-Agents ({counts['mobile']} phones, "
        f"{counts['tablet']} tablets, the rest computers): device<TAB>User-Agent.\n"
        f"{HEADER_MARK} Picked by loadtests/pick_user_agents.py (its docstring says from where "
        "and how); do not edit by hand.\n"
    )
    sys.stdout.writelines(format_line(user_agent) for user_agent in picked)


if __name__ == "__main__":
    main(sys.argv[1:])
