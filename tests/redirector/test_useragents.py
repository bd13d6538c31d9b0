"""Who is a person and who is a bot or a link preview."""

from __future__ import annotations

import pytest

from loadtests.user_agents import load_user_agents
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


def test_every_user_agent_the_load_tests_send_is_a_person_of_its_device_type() -> None:
    """The load tests' real-world mix (loadtests/user_agents.txt) takes the click path."""
    mix = load_user_agents()
    assert len({user_agent.string for user_agent in mix}) == len(mix) >= 500
    assert sum(user_agent.device == "mobile" for user_agent in mix) >= 0.75 * len(mix)
    misread = [
        (user_agent, agent)
        for user_agent in mix
        if (agent := classify(user_agent.string))[:2] != (False, user_agent.device)
    ]
    assert misread == []


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
        # Load generators: Locust's FastHttpUser (geventhttpclient), h2load, ApacheBench, k6.
        "python/gevent-http-client-2.3.1",
        "locust/2.47.0",
        "h2load nghttp2/1.52.0",
        "ApacheBench/2.3",
        "k6/0.45.0 (https://k6.io/)",
    ],
)
def test_previews_bots_and_tools_are_bots(ua: str) -> None:
    agent = classify(ua)
    assert agent.bot
    assert agent.device == "bot"
