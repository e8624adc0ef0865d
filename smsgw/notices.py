"""Outbound notices (`smsgw notify ...`): pushes from the agency's brandname, message_type 3.

    card-expiry --days N   every card whose last valid day is today + N, to its holder's phone
    payment-reminder       every voluntary participant whose paid-up date falls in this month
    dossier-results        every dossier an import moved to a result status (needs_more,
                           approved, rejected, returned), to its holder's phone; the gateway
                           runs this too, every `[notices] dossier_results_every` seconds

A run selects its targets in the records, renders each notice (replies.py), finds the carrier
of each phone (`phones.network`, then the `networks` of `[carriers.X]`), stores the notices as
pending MTs without an MO, each with a push billing row of 0 VND, and delivers them through the
outbox of the gateway (`outbox.Outbox`) with the configured adapters, paced per carrier by the
carrier's `tps` (or `[notices] rate`, when lower). Each notice gets one attempt here; one that
must be retried stays pending in the message store, where the gateway's outbox resumes it when
`smsgw serve` (re)starts.

Once only: a notice is stored under (kind, target, occasion), unique in the message store, and a
run queues nothing that is stored already. The occasion of a card-expiry notice is the day of
the run (so reminders at several lead times, `--days 30` then `--days 7`, each go once); that of
a payment reminder is the paid-up date itself (one reminder per paid-up period, however often
the command runs in the month); that of a dossier result is the status (one notice per dossier
and status). A dossier result is selected from the changes imports recorded
(store/dossier_changes.py) and its change settled once its notice is stored.

A holder without a phone, or whose network no carrier takes, gets nothing: both are counted in
the summary, and nothing is stored for them (a later run, after a config fix, sends theirs; a
dossier change whose holder has no phone is settled, one on a network no carrier takes is not).

Quiet hours (`[notices] quiet_hours`, quiet_hours.py): the notices of a run inside them are stored
held until their end and not sent by the run; the gateway's outbox sends them then, on lane 2 of
each carrier (after the replies), paced by the carrier's `tps`.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import aiohttp

from .billing import MessageType
from .carrier import CarrierAdapter, load_adapter
from .clock import VIETNAM
from .config import Config
from .dispatch import participation
from .gsm import measure
from .ids import new_id
from .logs import get_logger
from .metrics import Metrics
from .outbox import Outbox
from .phones import network
from .quiet_hours import not_before
from .replies import card_expiry_notice, dossier_result_notice, payment_reminder_notice
from .store import MessageStore, Notice, PendingMT, SqliteStore, open_messages, open_records
from .wire import OutboundMessage

CARD_EXPIRY = "card_expiry"
PAYMENT_REMINDER = "payment_reminder"
DOSSIER_RESULT = "dossier_result"
STORE_CHUNK = 500    # notices per message-store operation

log = get_logger(component="notices")


def command_name(kind: str) -> str:
    """The `smsgw notify` command of a notice kind: card-expiry, payment-reminder, dossier-results."""
    return "dossier-results" if kind == DOSSIER_RESULT else kind.replace("_", "-")


@dataclass(frozen=True)
class Draft:
    """One notice to send, before it is stored."""

    kind: str
    target: str
    occasion: date | str         # a day, or a dossier's status
    msisdn: str
    text: str


@dataclass
class NoticeSummary:
    """What one `smsgw notify` run did."""

    kind: str
    selection: str                                   # what was selected, in words
    selected: int = 0                                # records selected
    no_phone: int = 0                                # of which the person has no phone on file
    no_carrier: Counter = field(default_factory=Counter)   # network ("" unknown) -> phones no carrier takes
    queued: Counter = field(default_factory=Counter)       # carrier -> notices queued by this run
    queued_before: int = 0                           # stored by an earlier run: not queued again
    opted_out: int = 0                               # to phones that sent BH TC: neither stored nor sent
    sent: int = 0
    failed: int = 0
    pending: int = 0                                 # to be retried by the gateway's outbox
    held: int = 0                                    # queued in quiet hours: sent by the gateway's outbox
    held_until: float | None = None                  # ... from then (Unix seconds)

    def __str__(self) -> str:
        carriers = ", ".join(f"{name} {count}" for name, count in sorted(self.queued.items()))
        networks = ", ".join(f"{name or 'unknown'} {count}" for name, count in sorted(self.no_carrier.items()))
        lines = [
            f"notify {command_name(self.kind)}: {self.selected} {self.selection}",
            f"  queued now: {sum(self.queued.values())}" + (f" ({carriers})" if carriers else "")
            + f"; queued by an earlier run: {self.queued_before}",
            f"  not sent: {self.no_phone} without a phone on file, {sum(self.no_carrier.values())} on a network"
            " no carrier takes" + (f" ({networks})" if networks else "") + f", {self.opted_out} opted out (BH TC)",
            f"  delivery: {self.sent} sent, {self.failed} failed, {self.pending} left pending for the gateway's outbox",
        ]
        if self.held and self.held_until is not None:
            morning = datetime.fromtimestamp(self.held_until, VIETNAM)
            lines.append(f"  quiet hours: {self.held} held until {morning:%d/%m/%Y %H:%M} (Vietnam time), then sent"
                         " by the gateway's outbox (smsgw serve)")
        return "\n".join(lines)


# --- selection -------------------------------------------------------------------------------

async def card_expiry_drafts(records: SqliteStore, config: Config, today: date, days: int,
                             summary: NoticeSummary) -> list[Draft]:
    """A notice for every card whose last valid day is today + `days`, to its holder's phone."""
    expiry = today + timedelta(days=days)
    summary.selection = f"cards expiring on {expiry:%d/%m/%Y}"
    drafts = []
    for card, holder in await records.cards_expiring_on(expiry):
        summary.selected += 1
        if holder.phone is None:
            summary.no_phone += 1
            continue
        text = card_expiry_notice(card.card_no, holder.full_name, card.valid_to, config.notices.agent,
                                  unicode=config.unicode)
        drafts.append(Draft(CARD_EXPIRY, card.card_no, today, holder.phone, text))
    return drafts


async def payment_reminder_drafts(records: SqliteStore, config: Config, today: date,
                                  summary: NoticeSummary) -> list[Draft]:
    """A reminder for every voluntary participant whose paid-up date falls in today's month."""
    first = today.replace(day=1)
    last = today.replace(day=calendar.monthrange(today.year, today.month)[1])
    summary.selection = f"voluntary participants paid up to a day of {today:%m/%Y}"
    drafts = []
    for person, paid_until in await records.paid_up_until_between(first, last):
        summary.selected += 1
        if person.phone is None:
            summary.no_phone += 1
            continue
        months = participation(await records.periods(person.ssn), None, None).bhxh_months
        text = payment_reminder_notice(person.full_name, person.ssn, paid_until, months, unicode=config.unicode)
        drafts.append(Draft(PAYMENT_REMINDER, person.ssn, paid_until, person.phone, text))
    return drafts


async def queue_dossier_results(records: SqliteStore, store: MessageStore, config: Config, summary: NoticeSummary,
                                *, now: float) -> list[PendingMT]:
    """Queue a notice for every dossier change not settled, then settle the changes done with;
    the notices stored now that may go at once (see `queue`)."""
    changes = await records.unsettled_dossier_changes()
    summary.selection = "dossier changes to a result status"
    if not changes:   # the gateway's run every 30 s: no write transaction for nothing
        return []
    drafts, settled, changed = [], [], {}
    for change in changes:
        summary.selected += 1
        if change.phone is None:
            summary.no_phone += 1
            settled.append(change.id)
            continue
        changed.setdefault((change.code, change.status), []).append(change.id)
        text = dossier_result_notice(change.code, change.full_name or "", change.status, unicode=config.unicode)
        drafts.append(Draft(DOSSIER_RESULT, change.code, change.status, change.phone, text))
    notices = route(drafts, config, summary, now=now)
    pending = await queue(store, notices, summary, now=now)
    # stored now or before (a run that stopped before settling): done with, either way
    settled += [ident for notice in notices for ident in changed.pop((notice.target, notice.occasion), [])]
    await records.settle_dossier_changes(settled, at=now)
    return pending


def route(drafts: Sequence[Draft], config: Config, summary: NoticeSummary, *, now: float) -> list[Notice]:
    """The notices of the drafts whose phone's network a configured carrier takes, created at
    `now`: held until the morning when that is in the quiet hours."""
    held_until = not_before(config.notices.quiet_hours, now)
    notices = []
    for draft in drafts:
        network_name = network(draft.msisdn)
        carrier = config.carrier_for_network(network_name)
        if carrier is None:
            summary.no_carrier[network_name] += 1
            continue
        size = measure(draft.text)
        mt = OutboundMessage(id=new_id(), mo_id="", in_reply_to="", carrier=carrier,
                             sender=config.notices.sender, to=draft.msisdn, text=draft.text, encoding=size.encoding,
                             segments=size.segments, message_type=MessageType.PUSH)
        notices.append(Notice(draft.kind, draft.target, str(draft.occasion), mt, not_before=held_until))
    return notices


async def queue(store: MessageStore, notices: Sequence[Notice], summary: NoticeSummary, *,
                now: float | None = None) -> list[PendingMT]:
    """Store the notices not stored before; the ones stored now that may go at once, as pending
    MTs (the ones held for the quiet hours are counted in the summary, left to the gateway's outbox)."""
    if not notices:   # nothing to store: no store round trip (the SQLite writer's turn) for nothing
        return []
    now = time.time() if now is None else now
    stopped = await store.opted_out([notice.mt.to for notice in notices])
    summary.opted_out += sum(1 for notice in notices if notice.mt.to in stopped)
    notices = [notice for notice in notices if notice.mt.to not in stopped]   # the store checks again, in its transaction
    chunks = [notices[start:start + STORE_CHUNK] for start in range(0, len(notices), STORE_CHUNK)]
    results = await asyncio.gather(*(store.store_notices(chunk, now=now) for chunk in chunks))
    pending = [item for result in results for item in result]
    summary.queued.update(item.mt.carrier for item in pending)
    summary.queued_before += len(notices) - len(pending)
    held = [item.due_at for item in pending if item.due_at > now]
    summary.held += len(held)
    summary.held_until = min(held, default=summary.held_until)
    return [item for item in pending if item.due_at <= now]


# --- delivery --------------------------------------------------------------------------------

def notice_adapters(config: Config) -> dict[str, CarrierAdapter]:
    """The configured carriers' adapters, paced at `[notices] rate` where it is below their `tps`."""
    adapters = {}
    rate = config.notices.rate
    for name, carrier in config.carriers.items():
        if rate is not None and (carrier.tps is None or rate < carrier.tps):
            carrier = carrier.model_copy(update={"tps": rate})
        adapters[name] = load_adapter(carrier, shortcode=config.shortcode)
    return adapters


async def deliver(store: MessageStore, pending: Sequence[PendingMT], adapters: Mapping[str, CarrierAdapter],
                  session: aiohttp.ClientSession, summary: NoticeSummary,
                  advance: Callable[[int], None] = lambda n: None) -> None:
    """Give every pending notice one attempt through an `Outbox`; retries are left to the gateway's."""
    if not pending:
        return
    done = asyncio.Event()
    outcomes: Counter = Counter()

    def on_outcome(outcome: str) -> None:
        outcomes[outcome] += 1
        advance(1)
        if sum(outcomes.values()) >= len(pending):
            done.set()

    outbox = Outbox(store, adapters, session, Metrics(), on_outcome=on_outcome)
    await outbox.start(resume=False)   # only this run's notices: the gateway's outbox resumes the others
    for item in pending:
        outbox.add(item)
    try:
        await done.wait()
    finally:
        await outbox.stop()
    summary.sent += outcomes["sent"]
    summary.failed += outcomes["failed"]
    summary.pending += outcomes["pending"]
    log.info("notices delivered", kind=summary.kind, sent=outcomes["sent"], failed=outcomes["failed"],
             pending=outcomes["pending"])


async def notify(kind: str, db_path: str, config: Config, *, today: date, days: int = 0,
                 adapters: Mapping[str, CarrierAdapter] | None = None, progress: bool = True,
                 clock: Callable[[], float] = time.time) -> NoticeSummary:
    """Select, store and deliver the notices of `kind` for `today`; the summary of the run.

    `adapters` replaces the adapters built from the configuration (tests use `adapters.mock`).
    A progress bar goes to stderr when `progress` is true and stderr is a terminal. `clock`
    gives the time the notices are created at (the quiet hours: tests inject one).
    """
    from .progress import Progress

    if kind not in (CARD_EXPIRY, PAYMENT_REMINDER, DOSSIER_RESULT):
        raise ValueError(f"unknown notice kind {kind!r}")
    summary = NoticeSummary(kind, "")
    now = clock()
    async with AsyncExitStack() as stack:
        records = await open_records(db_path)
        stack.push_async_callback(records.close)
        store = await open_messages(db_path)
        stack.push_async_callback(store.close)
        if kind == DOSSIER_RESULT:
            pending = await queue_dossier_results(records, store, config, summary, now=now)
        else:
            drafts = await (card_expiry_drafts(records, config, today, days, summary) if kind == CARD_EXPIRY
                            else payment_reminder_drafts(records, config, today, summary))
            pending = await queue(store, route(drafts, config, summary, now=now), summary, now=now)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        with Progress(len(pending), f"notify {command_name(kind)}", enabled=None if progress else False) as bar:
            await deliver(store, pending, adapters if adapters is not None else notice_adapters(config),
                          session, summary, bar.advance)
    return summary
