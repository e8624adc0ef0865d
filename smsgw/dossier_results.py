"""The gateway's own run of `smsgw notify dossier-results` (CONTRACT §7: within a minute).

Every `[notices] dossier_results_every` seconds (30 by default, at most 60) the gateway queues a
notice for each dossier change an import recorded and no run settled yet
(`notices.queue_dossier_results`), in its own message store, and hands the ones that may go now
to its outbox: lane 2 of the holder's carrier, after the replies, at the carrier's `tps`; in
quiet hours they are held until the morning. Only the gateway that resumes the outbox runs it
(a lone gateway, or worker 0 of `--workers`); two gateways on one PostgreSQL database may both
run it: the notices' key (dossier_result, dossier code, status) lets one of them store each
notice, and the other none.

A run that fails (the database unreachable, the records' schema too old) is logged and tried
again at the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .config import Config
from .logs import get_logger
from .notices import DOSSIER_RESULT, NoticeSummary, queue_dossier_results
from .outbox import Outbox
from .store import MessageStore, SqliteStore, open_records

log = get_logger(component="notices")


async def send_dossier_results(records: SqliteStore, config: Config, store: MessageStore, outbox: Outbox, *,
                               now: float) -> NoticeSummary:
    """One run: queue the dossier results not queued yet, and give the outbox those due now."""
    summary = NoticeSummary(DOSSIER_RESULT, "")
    for item in await queue_dossier_results(records, store, config, summary, now=now):
        outbox.add(item)
    return summary


async def run_dossier_results(db_path: str, config: Config, store: MessageStore, outbox: Outbox, *,
                              clock: Callable[[], float], stop: asyncio.Event) -> None:
    """Run `send_dossier_results` every `[notices] dossier_results_every` seconds until `stop` is
    set (a run under way finishes: a records store is never left half opened); the records are
    opened at the first run and again after a failed one."""
    every = config.notices.dossier_results_every
    records: SqliteStore | None = None
    try:
        while not stop.is_set():
            try:
                records = records or await open_records(db_path)
                summary = await send_dossier_results(records, config, store, outbox, now=clock())
                if summary.selected:
                    log.info("dossier results queued", changes=summary.selected, queued=sum(summary.queued.values()),
                             queued_before=summary.queued_before, no_phone=summary.no_phone,
                             no_carrier=sum(summary.no_carrier.values()), held=summary.held)
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # tried again at the next run, on the records opened anew
                log.warning("dossier results not sent this time", error=str(exc))
                if records is not None:
                    await _close(records)
                    records = None
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
    finally:
        if records is not None:
            await _close(records)


async def _close(records: SqliteStore) -> None:
    try:
        await records.close()
    except Exception as exc:   # the store's failure was logged already
        log.debug("records not closed cleanly", error=str(exc))
