"""The User-Agent mix the load tests send: real-world strings of people's phones, tablets and
computers (`user_agents.txt`, `device<TAB>User-Agent` lines, made by `pick_user_agents.py`),
so that the click path sees as many distinct browsers as a campaign does, not one string that
every cache flatters. Pure, and free of locust imports."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

USER_AGENTS_FILE = Path(__file__).with_name("user_agents.txt")
HEADER_MARK = "#"


class UserAgent(NamedTuple):
    device: str  # mobile, tablet or desktop, as redirector.useragents.classify names them
    string: str


def format_line(user_agent: UserAgent) -> str:
    return f"{user_agent.device}\t{user_agent.string}\n"


def load_user_agents(path: Path = USER_AGENTS_FILE) -> list[UserAgent]:
    """The mix, in file order; ValueError naming the line for anything but a `device<TAB>UA`
    line, a comment or a blank line."""
    user_agents = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith(HEADER_MARK):
            continue
        device, tab, string = line.partition("\t")
        if not (tab and device and string.strip()) or "\t" in string:
            raise ValueError(f"{path}:{number}: expected 'device<TAB>User-Agent'")
        user_agents.append(UserAgent(device, string))
    return user_agents
