"""Personal data kept only as long as needed (CONTRACT §11, decree 13/2023): prune, export, erase.

`[retention] days` (default 90): message texts and phone numbers older than that are erased
from the message store, by `smsgw db prune` and by the running gateway once a day (`daily_prune`,
started at a random moment of its first hour, then every 24 h ± 30 min: on SQLite worker 0 only;
on PostgreSQL every gateway tries, and the store's prune lock lets one prune at a time: a gateway
finding it taken skips that run, `smsgw db prune` says so and exits 1). Billing rows stay, the phone replaced
by its keyed hash (store/retention.py says what each table keeps). A prune goes in steps of at
most `BATCH` rows, one short transaction each, with a pause between them for the gateway's writer
(as long as the step took, `PAUSE` at least).

`smsgw data export --phone P` / `smsgw data erase --phone P` answer a citizen's request: all
that is stored about one phone, and its erasure at any age, the billing rows hashed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .config import Config
from .logs import get_logger
from .store import PruneRunning, open_personal_data

DAY = 86_400.0
BATCH = 1_000             # rows a transaction
PAUSE = 0.02              # s at least between two transactions: the gateway's writer takes the lock meanwhile
FIRST_RUN_WITHIN = 3_600.0
JITTER = 1_800.0

log = get_logger(component="retention")


def cutoff(config: Config, now: float) -> float:
    """Data written before this moment (Unix seconds) is old enough to erase."""
    return now - config.retention.days * DAY


def prune(db: str, config: Config, *, now: float | None = None, batch: int = BATCH, pause: float = PAUSE,
          sleep: Callable[[float], Any] = time.sleep) -> Counter[str]:
    """Erase the personal data older than `[retention] days` before `now`; rows changed per table."""
    store = open_personal_data(db)
    try:
        _lock(store, db)
        key = store.hash_key(config.retention.hash_key)
        limit = cutoff(config, time.time() if now is None else now)
        done: Counter[str] = Counter()
        while True:
            began = time.perf_counter()
            table, rows = store.prune_step(limit, key, batch)
            if not table:
                return done
            done[table] += rows
            sleep(max(pause, time.perf_counter() - began))   # the store is the gateway's half the time or more
    finally:
        store.close()


async def prune_async(db: str, config: Config, *, batch: int = BATCH, pause: float = PAUSE) -> Counter[str]:
    """`prune` from the event loop: each transaction in a thread, the pauses on the loop."""
    store = await _in_thread(open_personal_data, db)
    try:
        await _in_thread(_lock, store, db)
        key = await _in_thread(store.hash_key, config.retention.hash_key)
        limit = cutoff(config, time.time())
        done: Counter[str] = Counter()
        while True:
            began = time.perf_counter()
            table, rows = await _in_thread(store.prune_step, limit, key, batch)
            if not table:
                return done
            done[table] += rows
            await asyncio.sleep(max(pause, time.perf_counter() - began))
    finally:
        await _in_thread(store.close)


async def _in_thread(call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)` in a thread. Cancelled, it still waits for the call to end before raising: the
    store is then closed after its step, never under it (closing an SQLite connection in use by
    another thread crashes the process)."""
    running = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        raise


async def daily_prune(db: str, config: Config, *, first_within: float = FIRST_RUN_WITHIN,
                      every: float = DAY, jitter: float = JITTER) -> None:
    """Prune now and then, until cancelled: first within `first_within` seconds, then every
    `every` ± `jitter`. A failed run is logged and tried again at the next."""
    delay = random.uniform(0, first_within)
    while True:
        await asyncio.sleep(delay)
        started = time.perf_counter()
        try:
            done = await prune_async(db, config)
        except asyncio.CancelledError:
            raise
        except PruneRunning:
            log.info("retention prune skipped: another process prunes this database now")
        except Exception:
            log.exception("retention prune failed; tried again at the next run")
        else:
            log.info("retention prune", days=config.retention.days, rows=dict(done),
                     seconds=round(time.perf_counter() - started, 1))
        delay = max(0.0, every + random.uniform(-jitter, jitter))


def _lock(store: Any, db: str) -> None:
    from .store.schema import shown

    if not store.take_prune_lock():
        raise PruneRunning(f"--db {shown(db)}: another prune is running on this database (a gateway's daily "
                           "prune, or another smsgw db prune); try again when it has finished")


def export_phone(db: str, config: Config, phone: str) -> dict[str, Any]:
    store = open_personal_data(db)
    try:
        return store.export_phone(phone, store.hash_key(config.retention.hash_key))
    finally:
        store.close()


def erase_phone(db: str, config: Config, phone: str) -> dict[str, int]:
    store = open_personal_data(db)
    try:
        return store.erase_phone(phone, store.hash_key(config.retention.hash_key))
    finally:
        store.close()
