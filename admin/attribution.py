"""The billboard model: which send a conversion is credited to. Pure: no I/O (the services
gather a recipient's sends and clicks; see the README's Attribution section for the model in
words, with a worked example).

A conversion of recipient R at time T goes to the latest send S of R (any campaign of the
workspace, sent_at <= T, not failed) that qualifies by click (R clicked a link of S's campaign
at c, S.sent_at <= c <= T, and T - S.sent_at <= the click window) or by view (S was
delivered at d <= T and T - d <= the view window); a tie of sent_at goes to the higher
campaign id. Its type is click if S qualifies by click, else view. A window of 0 is off;
bounds are inclusive. All times are unix milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["click", "view"]


@dataclass(frozen=True, slots=True)
class Send:
    """A send that is not failed: reported, or implied by a per-recipient link (sent and
    delivered when the link was created)."""

    campaign_id: int
    sent_ms: int
    delivered_ms: int | None


@dataclass(frozen=True, slots=True)
class Windows:
    click_ms: int  # counted from the send; 0: attribution by click is off
    view_ms: int  # counted from receipt; 0: attribution by view is off

    @property
    def reach_ms(self) -> int:
        """How long before a conversion an implied send (sent and delivered at once) may have
        been made and still win it."""
        return max(self.click_ms, self.view_ms)


@dataclass(frozen=True, slots=True)
class Attribution:
    campaign_id: int
    type: Kind


def clicked(times: Iterable[int], sent_ms: int, at_ms: int) -> bool:
    return any(sent_ms <= click <= at_ms for click in times)


def decide(
    sends: Iterable[Send],
    clicks: Mapping[int, Sequence[int]],
    at_ms: int,
    windows: Windows,
) -> Attribution | None:
    """The send a conversion at `at_ms` is credited to, or None. `clicks` holds the
    recipient's click times by campaign."""
    best: tuple[int, int] | None = None
    kind: Kind = "view"
    for send in sends:
        if send.sent_ms > at_ms:
            continue
        by_click = (
            windows.click_ms > 0
            and at_ms - send.sent_ms <= windows.click_ms
            and clicked(clicks.get(send.campaign_id, ()), send.sent_ms, at_ms)
        )
        delivered = send.delivered_ms
        by_view = (
            windows.view_ms > 0
            and delivered is not None
            and delivered <= at_ms
            and at_ms - delivered <= windows.view_ms
        )
        if not (by_click or by_view):
            continue
        rank = (send.sent_ms, send.campaign_id)
        if best is None or rank > best:
            best, kind = rank, "click" if by_click else "view"
    return None if best is None else Attribution(best[1], kind)
