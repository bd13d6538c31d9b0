"""Implied sends: a per-recipient link of a campaign counts as a send of it to that recipient,
sent and delivered when the link was created. Nothing is stored for them: they are found
where the links are, on each recipient's chain of codes (`admin.codes`, the record its own
index), as creating the recipient's link again would find it. No HTTP here.
"""

from __future__ import annotations

from collections.abc import Iterable

from admin.service.plan import Chain
from admin.service.store import MAX_CHAIN
from redirector.store.lookup import LinkReader
from redirector.store.record import PLAIN_LINK, Record, b36, decode


class ImpliedSends:
    def __init__(self, reader: LinkReader) -> None:
        self._reader = reader

    async def links_created(
        self, campaign_id: int, recipients: Iterable[str], chain: Chain
    ) -> dict[str, list[int]]:
        """The creation times (unix s) of the recipients' links of the campaign, for those who
        have or had one: a deleted link still was sent (its tombstone keeps the time), and
        a recipient's link deleted and made again is two. One read per position of the
        chains walked (almost always one)."""
        wanted = list(dict.fromkeys(recipients))
        found: dict[str, list[int]] = {}
        campaign = b36(campaign_id).encode()
        at = dict(zip(wanted, chain.first_codes(campaign_id, wanted), strict=True))
        for _ in range(MAX_CHAIN):
            if not at:
                break
            raws = await self._reader.records([code for _, code in at.values()])
            later = {}
            for (recipient, (position, _)), raw in zip(at.items(), raws, strict=True):
                if raw is None:
                    continue  # a free position: the chain ends here
                created = _plain_link(raw, campaign, recipient)
                if created is not None:
                    found[recipient] = [created]  # the usual case: their link, first on the chain
                    continue
                record = decode(raw)
                if _owned(record, campaign_id, recipient):
                    found.setdefault(recipient, []).append(record.created_at)
                    if record.live:
                        continue  # the recipient's link: nothing of theirs after it
                later[recipient] = chain.code(campaign_id, recipient, position + 1)
            at = later
        return found


def _owned(record: Record, campaign_id: int, recipient: str) -> bool:
    """A link, tombstone or alias of the campaign's recipient (an alias was made with its
    custom link, at its creation time)."""
    return record.campaign_id == campaign_id and record.recipient == recipient


def _plain_link(raw: bytes, campaign: bytes, recipient: str) -> int | None:
    """The creation time of `raw` if it is the most common record of all, a plain link (no
    flag) of that campaign (base 36) and recipient, read without decoding it whole (a
    tenth of the cost); None for any other record (decode it)."""
    if not raw.startswith(PLAIN_LINK):
        return None
    _, created, _, owner, _, size, tail = raw.split(b"|", 6)
    mine = recipient.encode()
    if owner != campaign or size != b36(len(mine)).encode() or tail[: len(mine)] != mine:
        return None
    return int(created, 36)
