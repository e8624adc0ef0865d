"""Protection of the short code: whom the gateway answers, and how often.

Rules, checked for every new MO (a carrier's retry of a stored MO is not a new MO):

- Only phones are answered. An MO from a short code or an alphanumeric sender
  (`phones.classify_sender`) is stored and never answered nor handed to the service: machines
  answering machines is how loops start. Always on.
- Loop guard (`[protection] repeat_limit`, default 5): a phone that sends exactly the same text
  more than `repeat_limit` times within a rolling minute gets no reply to the extra ones, until
  it has been quiet about that text for a minute. Auto-replies between machines repeat one text.
- Rate limit (`[protection] lookups_per_hour`, default 10): a phone gets at most that many
  answers within a rolling hour. The first MO over the limit gets one polite reply
  (`answers.RateLimitedAnswer`, worded by replies.py and handed in as `polite`; refunded:
  message_type 22, like a routed service that is busy),
  the next ones within the hour of that reply get nothing, and answers resume as soon as fewer
  than `lookups_per_hour` answers lie within the last hour. Every MO counts, whatever it says.
- `[protection] exempt` phones (operators' test phones, `smsgw replay --url`) are never limited.

The loop guard and the rate limit are on by default; `0` turns either off.

Where the state lives: in `mo_messages` itself. Each MO stores its `guard` (None when it was
answered normally) and the time it was taken; `MessageStore.store_mo` reads the sender's recent
history and decides inside the transaction that stores the MO, so concurrent MOs of one sender,
several gateway processes on one database and restarts all see the same counts, and the one
polite reply is sent exactly once. An MO whose reply is withheld is stored with its command and
error (the understanding report counts it), without MT and without billing row.
"""

from __future__ import annotations

from dataclasses import replace

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from .config import ProtectionConfig
from .logs import get_logger
from .phones import SenderKind, classify_sender, mask
from .store import Guard, Screening, SenderHistory
from .wire import OutboundMessage

if TYPE_CHECKING:
    from .replies import Reply

HOUR = 3600.0
MINUTE = 60.0

log = get_logger(component="protection")


class Protection:
    """The rules of one gateway; `config` None leaves only the rule on senders that are not phones.

    `polite` is the reply sent, once, in place of the answer to a phone over the hourly limit
    (worded by `replies.reply(RateLimitedAnswer(limit))`: this module decides, never words).
    `registry` (a prometheus CollectorRegistry) gets `smsgw_guarded_total{carrier,guard}`: MOs
    whose reply a rule withheld or replaced.
    """

    def __init__(self, config: ProtectionConfig | None, *, polite: Reply | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.polite = polite
        self.guarded: Counter | None = None
        if registry is not None:
            self.guarded = Counter("smsgw_guarded", "MOs whose reply a protection rule withheld or replaced",
                                   ["carrier", "guard"], registry=registry)

    def sender_guard(self, sender: str) -> Guard | None:
        """SHORT_CODE or ALPHANUMERIC for an MO's stored sender that is not a phone, else None."""
        kind = classify_sender(sender).kind
        if kind is SenderKind.SHORT_CODE:
            return Guard.SHORT_CODE
        if kind is SenderKind.ALPHANUMERIC:
            return Guard.ALPHANUMERIC
        return None

    def screening(self, answer: OutboundMessage) -> Screening | None:
        """How to screen the MO that `answer` replies to; None when no limit applies to its sender."""
        config = self.config
        if config is None or answer.to in config.exempt or not (config.lookups_per_hour or config.repeat_limit):
            return None
        polite = self.polite
        if polite is None:
            raise ValueError("protection with a rate limit needs its polite reply (polite=...)")
        instead = replace(answer, text=polite.text, encoding=polite.encoding, segments=polite.segments,
                          message_type=polite.message_type)
        return Screening(self.decide, instead, cap=max(config.lookups_per_hour, config.repeat_limit, 1))

    def decide(self, history: SenderHistory) -> Guard | None:
        """The guard for an MO of a phone with this history; None: answer it."""
        config = self.config
        if config is None:
            return None
        if config.repeat_limit and history.repeats >= config.repeat_limit:
            return Guard.LOOP
        if config.lookups_per_hour and history.answered >= config.lookups_per_hour:
            return Guard.OVER_LIMIT if history.warned else Guard.RATE_LIMITED
        return None

    def observe(self, carrier: str, mo_id: str, sender: str, guard: str | None) -> None:
        """Count and log a new MO that a rule caught."""
        if guard is None:
            return
        if self.guarded is not None:
            self.guarded.labels(carrier, guard).inc()
        log.info("reply withheld" if Guard(guard).silent else "rate limit reached: polite reply",
                 carrier=carrier, mo_id=mo_id, sender=mask(sender), guard=guard)
