"""MTs another process stored and left to the gateway, on SQLite (`smsgw questions answer`).

On PostgreSQL every gateway claims the MTs whose lease ran out or was released (outbox.py). On
SQLite one gateway delivers (the only process, or `--workers`' worker 0) and its outbox loads the
pending MTs only at start; an MT another process stored, leased to itself, and could not deliver
(the carrier refused it for now, or the process died) is taken here instead: every `interval`
seconds the store's `claim` hands over, once, the MTs left by another process (lease released or
run out; the gateway's own MTs carry no lease and are never taken twice), and they join the
outbox's queue with their ids.
"""

from __future__ import annotations

import asyncio

from .logs import get_logger
from .outbox import Outbox
from .store import MessageStore

LEFT_OVER_INTERVAL = 5.0
"""Seconds between two looks for MTs left by another process."""

log = get_logger(component="outbox")


async def take_left_over(store: MessageStore, outbox: Outbox, interval: float = LEFT_OVER_INTERVAL) -> None:
    """Run until cancelled: MTs left by another process into `outbox`."""
    while True:
        try:
            taken = await store.claim()
            for pending in taken:
                outbox.add(pending)
            if taken:
                log.info("outbox took over", pending=len(taken))
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # the store refusing writes now: tried again at the next look
            log.warning("outbox could not look for MTs left by another process", error=str(exc))
        await asyncio.sleep(interval)
