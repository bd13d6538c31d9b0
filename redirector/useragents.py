"""What a user agent is: a person's browser (and which), or a bot / link-preview fetcher.

Messaging apps fetch every link they display to draw a preview (iMessage, WhatsApp, Android
Messages, Telegram, Slack, Facebook...), and carriers scan links in SMS: those fetches are
not clicks. ua-parser (a maintained port of the uap-core regexes) recognises most of them as
device "Spider"; the pattern below adds fetchers, HTTP libraries and load generators it does
not flag (Locust's own User-Agent, say): a program is not a person tapping a link, so its hits
are bot hits, and the load tests send real phones' User-Agents instead.
Results are cached per user-agent string: a campaign sees few distinct ones, and parsing
costs ~10 µs. Only the first USER_AGENT_MAX characters are parsed (and cached), as the
redirector queues no more: a hit costs a bounded parse whatever it sent. This runs in the
click worker (redirector/clickworker.py), never in the redirect process.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from ua_parser import parse

from redirector.clicks import USER_AGENT_MAX

_PREVIEW_OR_TOOL = re.compile(
    r"bot\b|bot/|crawl|spider|preview|scanner|fetcher|facebookexternalhit|whatsapp|telegram"
    r"|slack|discord|skypeuripreview|embedly|iframely|vkshare|pinterest|redditbot|linkedin"
    r"|google-pagerenderer|googleimageproxy|google-read-aloud|headlesschrome|phantomjs"
    r"|^curl/|^wget/|python-requests|python-urllib|aiohttp|httpx|go-http-client|^java/"
    r"|okhttp|libwww|apache-httpclient|node-fetch|axios|undici|^got\b|libcurl|^dart/"
    r"|postmanruntime|gevent-http-client|^locust|h2load|nghttp2|^wrk\b|apachebench|^hey/|^k6/",
    re.IGNORECASE,
)
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"}
_DESKTOP_OS = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD"}


class Agent(NamedTuple):
    bot: bool
    device: str  # mobile, tablet, desktop, bot or other
    os: str
    browser: str


def classify(user_agent: str) -> Agent:
    return _classify(user_agent[:USER_AGENT_MAX])


@lru_cache(maxsize=20_000)
def _classify(user_agent: str) -> Agent:
    if not user_agent.strip():
        return Agent(True, "bot", "Other", "Other")
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Other"
    os = result.os.family if result.os else "Other"
    device = result.device.family if result.device else "Other"
    if device == "Spider" or _PREVIEW_OR_TOOL.search(user_agent):
        return Agent(True, "bot", os, browser)
    return Agent(False, _device_type(user_agent, os, device), os, browser)


def _device_type(user_agent: str, os: str, device: str) -> str:
    if (
        device == "iPad"
        or "Tablet" in user_agent
        or (os == "Android" and "Mobile" not in user_agent)
    ):
        return "tablet"
    if os in _MOBILE_OS:
        return "mobile"
    if os in _DESKTOP_OS:
        return "desktop"
    return "other"
