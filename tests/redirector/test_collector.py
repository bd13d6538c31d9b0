"""The redirect process's garbage collector settings (redirector/server.py)."""

from __future__ import annotations

import gc

from redirector.server import YOUNG_COLLECTION_THRESHOLD, settle_collector


def test_once_up_the_server_freezes_what_startup_made_and_collects_young_objects_less_often() -> (
    None
):
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        settle_collector()
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *threshold[1:])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
