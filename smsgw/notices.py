"""Outbound notices (`smsgw notify ...`): pushes from the agency's brandname, message_type 3.

    card-expiry --days N   every card whose last valid day is today + N, to its holder's phone
    payment-reminder       every voluntary participant whose paid-up date falls in this month

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
the command runs in the month).

A holder without a phone, or whose network no carrier takes, gets nothing: both are counted in
the summary, and nothing is stored for them (a later run, after a config fix, sends theirs).
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import aiohttp

from .billing import MessageType
from .carrier import CarrierAdapter, load_adapter
from .config import Config
from .dispatch import participation
from .gsm import measure
from .ids import new_id
from .logs import get_logger
from .metrics import Metrics
from .outbox import Outbox
from .phones import network
from .replies import card_expiry_notice, payment_reminder_notice
from .store import MessageStore, Notice, PendingMT, SqliteStore, open_messages, open_records
from .wire import OutboundMessage

CARD_EXPIRY = "card_expiry"
PAYMENT_REMINDER = "payment_reminder"
STORE_CHUNK = 500    # notices per message-store operation

log = get_logger(component="notices")


@dataclass(frozen=True)
class Draft:
    """One notice to send, before it is stored."""

    kind: str
    target: str
    occasion: date
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

    def __str__(self) -> str:
        carriers = ", ".join(f"{name} {count}" for name, count in sorted(self.queued.items()))
        networks = ", ".join(f"{name or 'unknown'} {count}" for name, count in sorted(self.no_carrier.items()))
        lines = [
            f"notify {self.kind.replace('_', '-')}: {self.selected} {self.selection}",
            f"  queued now: {sum(self.queued.values())}" + (f" ({carriers})" if carriers else "")
            + f"; queued by an earlier run: {self.queued_before}",
            f"  not sent: {self.no_phone} without a phone on file, {sum(self.no_carrier.values())} on a network"
            " no carrier takes" + (f" ({networks})" if networks else "") + f", {self.opted_out} opted out (BH TC)",
            f"  delivery: {self.sent} sent, {self.failed} failed, {self.pending} left pending for the gateway's outbox",
        ]
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


def route(drafts: Sequence[Draft], config: Config, summary: NoticeSummary) -> list[Notice]:
    """The notices of the drafts whose phone's network a configured carrier takes."""
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
        notices.append(Notice(draft.kind, draft.target, draft.occasion.isoformat(), mt))
    return notices


async def queue(store: MessageStore, notices: Sequence[Notice], summary: NoticeSummary, *,
                now: float | None = None) -> list[PendingMT]:
    """Store the notices not stored before; the ones stored now, as pending MTs."""
    now = time.time() if now is None else now
    stopped = await store.opted_out([notice.mt.to for notice in notices])
    summary.opted_out += sum(1 for notice in notices if notice.mt.to in stopped)
    notices = [notice for notice in notices if notice.mt.to not in stopped]   # the store checks again, in its transaction
    chunks = [notices[start:start + STORE_CHUNK] for start in range(0, len(notices), STORE_CHUNK)]
    results = await asyncio.gather(*(store.store_notices(chunk, now=now) for chunk in chunks))
    pending = [item for result in results for item in result]
    summary.queued.update(item.mt.carrier for item in pending)
    summary.queued_before += len(notices) - len(pending)
    return pending


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
                 adapters: Mapping[str, CarrierAdapter] | None = None, progress: bool = True) -> NoticeSummary:
    """Select, store and deliver the notices of `kind` for `today`; the summary of the run.

    `adapters` replaces the adapters built from the configuration (tests use `adapters.mock`).
    A progress bar goes to stderr when `progress` is true and stderr is a terminal.
    """
    from .progress import Progress

    summary = NoticeSummary(kind, "")
    records = await open_records(db_path)
    try:
        if kind == CARD_EXPIRY:
            drafts = await card_expiry_drafts(records, config, today, days, summary)
        elif kind == PAYMENT_REMINDER:
            drafts = await payment_reminder_drafts(records, config, today, summary)
        else:
            raise ValueError(f"unknown notice kind {kind!r}")
    finally:
        await records.close()
    notices = route(drafts, config, summary)
    store = await open_messages(db_path)
    try:
        pending = await queue(store, notices, summary)
        async with aiohttp.ClientSession() as session:
            with Progress(len(pending), f"notify {kind.replace('_', '-')}", enabled=None if progress else False) as bar:
                await deliver(store, pending, adapters if adapters is not None else notice_adapters(config),
                              session, summary, bar.advance)
    finally:
        await store.close()
    return summary
