"""Who is a person and who is a bot or a link preview."""

from __future__ import annotations

import pytest

from redirector.useragents import classify
from tests.user_agents import ANDROID, IPAD, IPHONE, WINDOWS


@pytest.mark.parametrize(
    ("ua", "device", "os", "browser"),
    [
        (IPHONE, "mobile", "iOS", "Mobile Safari"),
        (IPAD, "tablet", "iOS", "Mobile Safari"),
        (ANDROID, "mobile", "Android", "Chrome Mobile"),
        (WINDOWS, "desktop", "Windows", "Chrome"),
    ],
)
def test_browsers_are_people(ua: str, device: str, os: str, browser: str) -> None:
    agent = classify(ua)
    assert not agent.bot
    assert (agent.device, agent.os, agent.browser) == (device, os, browser)


@pytest.mark.parametrize(
    "ua",
    [
        "",
        "   ",
        "WhatsApp/2.23.20.0 A",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # iMessage previews
        "TelegramBot (like TwitterBot)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "curl/8.4.0",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
    ],
)
def test_previews_bots_and_tools_are_bots(ua: str) -> None:
    agent = classify(ua)
    assert agent.bot
    assert agent.device == "bot"
