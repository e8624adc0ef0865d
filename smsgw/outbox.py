"""Async MT delivery: the outbox worker.

Every pending MT is in the message store before its MO is answered, so the outbox only needs
to find them again: `start` loads every pending MT (after a clean stop or a SIGKILL alike), and
`add` hands over the ones stored since. Each MT is sent through its carrier's adapter with the
same id every time. A `TemporaryDeliveryError` schedules a retry after an exponential back-off
with jitter, from the carrier's `retry_initial` up to `retry_max`; once `give_up_after` seconds
have passed since the MT was stored (or at once for a `PermanentDeliveryError`) the MT and its
MO are marked failed and the charge is refunded.

Delivery is at least once: an MT sent just before a crash, whose success was not yet recorded,
is sent again after the restart, with the same id, for the carrier to drop.

Each carrier's `tps` paces its MTs (`throttle.Throttle`, an MT costing its SMS parts): an MT
the carrier's bucket cannot take yet waits in the queue until it can, without holding one of the
`concurrency` sending slots, so a slow carrier never holds up the others.

Lanes and holds (SHARED-INTERFACES §2): each carrier has one queue of the MTs due, taken by lane
(0 replies and one-time codes, 1 single API messages, 2 notices and batches), oldest first
within a lane, and the carrier's bucket is shared by all lanes: each token goes to the head of
that queue as it is then, so a reply stored behind 10,000 queued notices goes in the next send
slot. An MT held (`not_before`: quiet hours, a scheduled send) waits on a timer until then, not
in the queue; its give-up time runs from its release. MTs another process stored held are found
as their time nears (a lease's claim on PostgreSQL; `MessageStore.held` every `tick` on SQLite).

The outbox needs four things of the message store (`OutboxStore`, which `messages.MessageStore`
is): the MTs pending, and each attempt's outcome recorded. `on_outcome` hears each outcome too
("sent", "pending" for a retry scheduled, "failed"): `smsgw notify` counts its run's with it.

An outbox several gateways share (`store.shared`: PostgreSQL) is claimed with leases: the MTs a
gateway stores are leased to it, and while it holds them (waiting, throttled, being sent) it
renews their leases every third of `store.lease_seconds`. With `resume`, it also claims, at the
same pace, the MTs whose lease ran out (a dead gateway's, keeping their ids), and at once when
another gateway releases MTs (its `stop` does, and the store's `watch` wakes the others:
LISTEN/NOTIFY). A lease this gateway failed to renew in time is dropped from its queue (another
gateway may hold it now); delivery stays at least once, with the MT's id.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import aiohttp
import structlog

from .carrier import CarrierAdapter
from .errors import DeliveryError, PermanentDeliveryError
from .logs import get_logger
from .store import REPLY_LANE, PendingMT
from .metrics import Metrics
from .phones import mask
from .throttle import throttle_for

log = get_logger(component="outbox")


def backoff(attempts: int, *, initial: float, maximum: float, jitter: float) -> float:
    """Seconds to wait after the `attempts`-th failure; `jitter` in [0, 1) spreads retries.

    The delay doubles from `initial` and is capped at `maximum`; jitter takes up to half of it
    away, never below `initial`.
    """
    ceiling = min(maximum, initial * 2 ** min(attempts - 1, 64))
    return max(min(initial, maximum), ceiling * (1 - jitter / 2))


class OutboxStore(Protocol):
    """What the outbox asks of the message store."""

    @property
    def refusal(self) -> str | None: ...   # why writes are refused now (storefiles.py), None when they are not

    async def pending(self) -> list[PendingMT]: ...

    async def held(self, until: float) -> list[PendingMT]: ...

    async def mark_sent(self, mt_id: str) -> None: ...

    async def schedule_retry(self, mt_id: str, *, attempts: int, next_attempt_at: float, error: str) -> None: ...

    async def give_up(self, mt_id: str, *, error: str, now: float) -> bool: ...


@dataclass(order=True)
class _Timer:
    """An MT whose time has not come: a retry's back-off, a hold (`not_before`), a throttled resume."""

    at: float
    order: int
    pending: PendingMT = field(compare=False)


@dataclass(order=True)
class _Ready:
    """An MT due now, in its carrier's queue: lower lane first, then oldest first."""

    lane: int
    created_at: float
    order: int
    pending: PendingMT = field(compare=False)


class Outbox:
    """Delivers pending MTs with at most `concurrency` sends at once.

    `tick` is the longest the outbox sleeps without reading its clock again (a clock set forward
    is noticed within it) and, on a store only this process delivers from, how often it looks for
    MTs another process stored held (`MessageStore.held`), so that they wake on time.
    """

    def __init__(self, store: OutboxStore, adapters: Mapping[str, CarrierAdapter],
                 session: aiohttp.ClientSession, metrics: Metrics, *, concurrency: int = 32,
                 clock: Callable[[], float] = time.time, jitter: Callable[[], float] = random.random,
                 on_outcome: Callable[[str], None] = lambda outcome: None, tick: float = 60.0) -> None:
        self.store = store
        self.on_outcome = on_outcome
        self.adapters = adapters
        self.session = session
        self.metrics = metrics
        self.concurrency = concurrency
        self.clock = clock
        self.jitter = jitter
        self.tick = tick
        self.throttles = {name: throttle_for(store, name, adapter.config.tps) for name, adapter in adapters.items()}
        for name, throttle in self.throttles.items():
            metrics.track_mt_rate(name, lambda throttle=throttle: throttle.measured, throttle.limit)
        self._timers: list[_Timer] = []
        self._ready: dict[str, list[_Ready]] = {}     # carrier -> its MTs due now (a heap)
        self._urgent: collections.Counter[str] = collections.Counter()   # carrier -> its replies in `_ready`
        self._order = itertools.count()
        self._sending: set[asyncio.Task] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._shared = getattr(store, "shared", False)
        self._flying: dict[asyncio.Task, str] = {}    # MT id of each send under way
        self._lost: set[str] = set()                 # leases run out: dropped when they come due
        self._settled: set[str] | None = None        # MTs whose send ended while `held` was read
        self._claim_now = asyncio.Event()
        self._leases: asyncio.Task | None = None
        # Checked before each send (the API's: an OTP past its ttl is expired instead); False: not sent.
        self.screen: Callable[[PendingMT], Awaitable[bool]] | None = None

    @property
    def depth(self) -> int:
        """MTs waiting (held ones included) or being sent."""
        return len(self._timers) + sum(len(queue) for queue in self._ready.values()) + len(self._sending)

    @property
    def oldest_pending_age(self) -> float:
        """Seconds since the oldest MT waiting for its next attempt was stored (or released from
        its hold); 0 when none waits."""
        oldest = min((item.waiting_since for item in self._queued()), default=None)
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, *, resume: bool = True) -> None:
        """Start delivering; with `resume`, first load every MT left pending in the store, and
        then keep looking for the ones other processes store (leases, or held MTs: see `tick`)."""
        pending = await self.store.pending() if resume else []
        for item in pending:
            self._schedule(item, self.clock())
        if pending:
            log.info("outbox resumed", pending=len(pending))
        self._task = asyncio.create_task(self._run(), name="smsgw-outbox")
        if self._shared:
            self._leases = asyncio.create_task(self._keep_leases(claim=resume), name="smsgw-outbox-leases")
        elif resume:
            self._leases = asyncio.create_task(self._wake_held(), name="smsgw-outbox-held")

    def add(self, pending: PendingMT) -> None:
        """Deliver an MT just stored as pending (at its `not_before` when it is held).

        On a shared store an MT held beyond a lease is left to the gateway that claims it as its
        time nears (see `MessageStore.claim`): no lease is renewed for hours.
        """
        if self._shared and pending.not_before is not None \
                and pending.not_before > self.clock() + self.store.lease_seconds:
            return
        self._schedule(pending, pending.next_attempt_at)

    async def stop(self, *, grace: float = 15.0) -> None:
        """Stop starting sends and let the ones under way finish (cancelled after `grace` seconds).

        MTs not sent stay pending in the store and are resumed by the next `start`.
        """
        if self._task is None:
            return
        # The flag as well as the cancellation: on Python 3.11 `wait_for` may swallow a
        # cancellation that arrives as the wake-up event is set, and the loop would go on.
        self._stopping = True
        self._wakeup.set()
        self._task.cancel()
        leases, self._leases = self._leases, None
        if leases is not None:
            leases.cancel()
        await asyncio.gather(self._task, *([leases] if leases else []), return_exceptions=True)
        self._task = None
        late: set[asyncio.Task] = set()
        if self._sending:
            _, late = await asyncio.wait(set(self._sending), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._shared:
            await self._hand_over()

    def _queued(self) -> Iterator[PendingMT]:
        """Every MT waiting in this outbox: its timers and its carriers' queues."""
        yield from (timer.pending for timer in self._timers)
        for queue in self._ready.values():
            yield from (ready.pending for ready in queue)

    async def _hand_over(self) -> None:
        """Release the MTs this gateway holds unsent, so the other gateways take them now, not after the lease."""
        held = [item.mt.id for item in self._queued() if item.mt.id not in self._lost]
        try:
            if held:
                await self.store.release(held)
                log.info("outbox handed over", pending=len(held))
            await self.store.unwatch()
        except Exception as exc:   # the database unreachable: the leases run out instead
            log.warning("outbox hand-over failed, its leases will run out", pending=len(held), error=str(exc))
        self._timers.clear()
        self._ready.clear()
        self._urgent.clear()

    def _held(self) -> set[str]:
        return {item.mt.id for item in self._queued()} - self._lost | set(self._flying.values())

    async def _keep_leases(self, *, claim: bool) -> None:
        """Renew the leases held, claim the MTs free to take (with `claim`), every third of the lease."""
        interval = max(0.05, self.store.lease_seconds / 3)
        while not self._stopping:
            try:
                if claim:
                    await self.store.watch(self._claim_now.set)
                self._claim_now.clear()
                waiting = {item.mt.id for item in self._queued()} - self._lost
                flying = set(self._flying.values())
                if waiting or flying:
                    # sends under way are renewed too, never dropped: they finish, at least once
                    renewed = await self.store.renew(sorted(waiting | flying))
                    lost = waiting - renewed
                    if lost:
                        self._lost |= lost
                        log.warning("outbox leases lost, left to the gateway holding them", mts=len(lost))
                if claim:
                    self._take(await self.store.claim())
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # the database unreachable: tried again at the next tick
                log.warning("outbox leases not renewed", error=str(exc))
            try:
                await asyncio.wait_for(self._claim_now.wait(), interval)
            except TimeoutError:
                pass

    async def _wake_held(self) -> None:
        """Every `tick`, take the MTs that another process stored held (`smsgw notify` in quiet
        hours) and whose time comes within two ticks: each is then sent at its `not_before`."""
        while not self._stopping:
            self._settled = set()
            try:
                found = await self.store.held(self.clock() + 2 * self.tick)
                # one whose send ended while the store was read was pending then, and is not now
                self._take([item for item in found if item.mt.id not in self._settled])
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # the store failing: tried again at the next tick
                log.warning("outbox could not look for held MTs", error=str(exc))
            finally:
                self._settled = None
            await asyncio.sleep(self.tick)

    def _take(self, claimed: list[PendingMT]) -> None:
        held = self._held()
        taken = 0
        for item in claimed:
            if item.mt.id in self._lost:
                self._lost.discard(item.mt.id)   # ours again, and still in the queue
            elif item.mt.id not in held:
                self._schedule(item, item.next_attempt_at)
                taken += 1
        if taken:
            log.info("outbox took over", pending=taken)

    def _schedule(self, pending: PendingMT, at: float) -> None:
        """Queue `pending` for an attempt at `at`, and never before its `not_before`."""
        if pending.not_before is not None:
            at = max(at, pending.not_before)
        heapq.heappush(self._timers, _Timer(at, next(self._order), pending))
        self._wakeup.set()

    async def _run(self) -> None:
        while not self._stopping:
            # cleared first: a wake-up while a shared throttle asks the database is kept
            self._wakeup.clear()
            now = self.clock()
            self._release(now)
            throttled = await self._start_sends()
            timeout = self.tick
            if len(self._sending) < self.concurrency:   # else a send ending wakes it
                if self._timers:
                    timeout = min(timeout, max(0.0, self._timers[0].at - now))
                if throttled is not None:
                    timeout = min(timeout, throttled)
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass

    def _release(self, now: float) -> None:
        """Move the MTs whose time has come to their carrier's queue."""
        while self._timers and self._timers[0].at <= now:
            pending = heapq.heappop(self._timers).pending
            if pending.mt.id in self._lost:
                self._lost.discard(pending.mt.id)
                continue
            queue = self._ready.setdefault(pending.mt.carrier, [])
            heapq.heappush(queue, _Ready(pending.lane, pending.created_at, next(self._order), pending))
            if pending.lane == REPLY_LANE:
                self._urgent[pending.mt.carrier] += 1

    async def _start_sends(self) -> float | None:
        """Start the sends the carriers' buckets allow, one carrier after the other, each one's
        queue in order (lane, then age); the shortest wait of a throttled carrier, or None."""
        throttled: float | None = None
        carriers = collections.deque(carrier for carrier, queue in self._ready.items() if queue)
        while carriers and len(self._sending) < self.concurrency:
            carrier = carriers.popleft()
            queue = self._ready[carrier]
            pending = queue[0].pending
            urgent = pending.lane == REPLY_LANE
            if pending.mt.id in self._lost:
                self._pop(carrier, queue)
                self._lost.discard(pending.mt.id)
            else:
                throttle = self.throttles.get(carrier)
                # the MTs of its kind behind it that could start now may be paced with it (one round
                # trip); a reply's take never books slots for the notices behind it
                behind = (self._urgent[carrier] if urgent else len(queue)) - 1
                ahead = min(behind, self.concurrency - len(self._sending) - 1)
                wait = (await throttle.acquire(max(1, pending.mt.segments), ahead=ahead, urgent=urgent)
                        if throttle is not None else 0.0)
                if wait > 0:   # its next MT takes the next token, whatever arrives meanwhile in a lower lane
                    throttled = wait if throttled is None else min(throttled, wait)
                    continue
                self._pop(carrier, queue)
                task = asyncio.create_task(self._deliver(pending))
                self._sending.add(task)
                self._flying[task] = pending.mt.id
                task.add_done_callback(self._finished)
            if queue:
                carriers.append(carrier)
            else:
                del self._ready[carrier]
        return throttled

    def _pop(self, carrier: str, queue: list[_Ready]) -> None:
        if heapq.heappop(queue).lane == REPLY_LANE:
            self._urgent[carrier] -= 1

    def _finished(self, task: asyncio.Task) -> None:
        self._sending.discard(task)
        mt_id = self._flying.pop(task, None)
        if self._settled is not None and mt_id is not None:
            self._settled.add(mt_id)
        self._wakeup.set()

    async def _deliver(self, pending: PendingMT) -> None:
        mt = pending.mt
        # This task's own context: every line of this attempt names the MO, and the carrier's
        # request that brought it when this process took it (not after a restart).
        structlog.contextvars.bind_contextvars(mo_id=mt.mo_id or None, request_id=pending.request_id)
        adapter = self.adapters.get(mt.carrier)
        if adapter is None:
            log.warning("mt kept pending: carrier not configured", carrier=mt.carrier, mt_id=mt.id)
            return
        if self.store.refusal is not None:   # its sending could not be recorded: kept, tried again later
            at = self.clock() + adapter.config.retry_max
            self._schedule(replace(pending, next_attempt_at=at), at)
            return
        try:
            if self.screen is not None and not await self.screen(pending):
                self.on_outcome("expired")
                log.info("mt expired, not sent", carrier=mt.carrier, mt_id=mt.id, attempts=pending.attempts)
                return
            try:
                await adapter.send(self.session, mt)
            except PermanentDeliveryError as exc:
                await self._give_up(pending, str(exc))
            except DeliveryError as exc:
                await self._retry(pending, adapter, str(exc))
            else:
                await self.store.mark_sent(mt.id)
                self.on_outcome("sent")
                self.metrics.mt_sent.labels(mt.carrier).inc()
                # The line that ties the MO (mo_id, request_id) to its MT (mt_id), whose delivery
                # report is logged with the mt_id: an operator follows one MO from end to end.
                log.info("mt sent", carrier=mt.carrier, mt_id=mt.id, to=mask(mt.to), attempts=pending.attempts + 1)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug in an adapter or a store failure: the MT stays pending and is tried again.
            log.exception("mt delivery failed unexpectedly", carrier=mt.carrier, mt_id=mt.id)
            at = self.clock() + adapter.config.retry_max
            self._schedule(replace(pending, attempts=pending.attempts + 1, next_attempt_at=at), at)

    async def _retry(self, pending: PendingMT, adapter: CarrierAdapter, error: str) -> None:
        config = adapter.config
        now = self.clock()
        deadline = pending.waiting_since + config.give_up_after   # a held MT's time runs from its release
        if now >= deadline:
            await self._give_up(pending, error)
            return
        attempts = pending.attempts + 1
        delay = backoff(attempts, initial=config.retry_initial, maximum=config.retry_max, jitter=self.jitter())
        at = min(now + delay, deadline)
        await self.store.schedule_retry(pending.mt.id, attempts=attempts, next_attempt_at=at, error=error)
        self.on_outcome("pending")
        self.metrics.mt_retries.labels(pending.mt.carrier).inc()
        log.info("mt retry", carrier=pending.mt.carrier, mt_id=pending.mt.id, attempts=attempts,
                 delay_s=round(at - now, 3), error=error)
        self._schedule(replace(pending, attempts=attempts, next_attempt_at=at), at)

    async def _give_up(self, pending: PendingMT, error: str) -> None:
        mt = pending.mt
        given_up = await self.store.give_up(mt.id, error=error, now=self.clock())
        self.on_outcome("failed")
        if given_up:
            self.metrics.mt_failures.labels(mt.carrier).inc()
            log.warning("mt given up, charge refunded", carrier=mt.carrier, mt_id=mt.id, mo_id=mt.mo_id,
                        to=mask(mt.to), attempts=pending.attempts + 1, error=error)
