"""The API's status callbacks (CONTRACT §8): every status a message takes, POSTed to its callback_url.

The queue is in the store (`api_callbacks`, filled in the transactions that change a status:
store/api.py), so callbacks survive restarts. `CallbackSender` reads it: it claims the first
undelivered callback of each message that is due (for `LEASE` seconds, so that another gateway
on the same PostgreSQL database does not send it at the same time), POSTs the body
`{"id", "to", "class", "status", "updated_at"}` signed `X-Smsgw-Signature` (hex HMAC-SHA256 of
the body with the key's callback secret, as carriers sign for us: CONTRACT §5), and marks it
done on a 2xx; anything else is retried with back-off (outbox.backoff, from RETRY_INITIAL up to
RETRY_MAX). A message's next status is sent only once the one before it was taken: in order,
at least once (a 2xx lost in a crash is sent again).

The queue is read again at once after a round that sent something, `POLL` seconds after
`wake()` (the API stored a message, or the outbox recorded an MT's outcome: a status may have
changed), and otherwise every `IDLE_POLL` seconds (a delivery report, a retry coming due,
another gateway's change): an idle gateway reads it every few seconds, not five times a second.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timezone

import aiohttp

from .adapters.generic import SIGNATURE_HEADER, sign
from .logs import get_logger
from .outbox import backoff
from .store.api import ApiStore, Callback

POLL = 0.2            # seconds at least between two looks at the queue that found nothing due
IDLE_POLL = 2.0       # seconds at most between two looks at the queue when nothing wakes the sender
LEASE = 30.0          # seconds a claimed callback stays this gateway's
TIMEOUT = 10.0        # seconds for the receiver to answer
RETRY_INITIAL = 1.0
RETRY_MAX = 600.0
BATCH = 200

log = get_logger(component="callbacks")


def callback_body(callback: Callback) -> bytes:
    body = callback.message.public()
    body["status"] = callback.status
    body["updated_at"] = datetime.fromtimestamp(callback.at, timezone.utc).isoformat()
    return json.dumps(body, separators=(",", ":")).encode()


class CallbackSender:
    def __init__(self, store: ApiStore) -> None:
        self.store = store
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """A status may have changed: look at the queue within `POLL` seconds."""
        self._woken.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="smsgw-api-callbacks")

    async def stop(self, grace: float = TIMEOUT + 5) -> None:
        """Stop after the round under way (not in the middle of a store operation); cancelled after `grace` s."""
        if self._task is None:
            return
        self._stopping.set()
        self._woken.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self._stopping.is_set():
                self._woken.clear()
                try:
                    due = await self.store.due_callbacks(time.time(), LEASE, BATCH)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:   # the store unavailable: looked at again later
                    log.warning("callbacks not read", error=str(exc))
                    due = []
                if due:
                    await asyncio.gather(*(self._send(session, callback) for callback in due))
                else:
                    await self._idle()

    async def _idle(self) -> None:
        """Wait `POLL` seconds, then until woken (a wake during the last look counts), stopped or
        `IDLE_POLL` seconds have passed."""
        for event, seconds in ((self._stopping, POLL), (self._woken, IDLE_POLL - POLL)):
            if self._stopping.is_set():
                return
            try:
                await asyncio.wait_for(event.wait(), seconds)
            except TimeoutError:
                pass

    async def _send(self, session: aiohttp.ClientSession, callback: Callback) -> None:
        body = callback_body(callback)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(callback.secret, body)}
        try:
            async with session.post(callback.url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                error = None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # refused, reset, timed out, a bad URL: retried
            error = f"{type(exc).__name__}: {exc}"[:200]
        try:
            if error is None:
                await self.store.callback_done(callback.seq, time.time())
                log.info("callback sent", id=callback.message.id, status=callback.status)
                return
            attempts = callback.attempts + 1
            delay = backoff(attempts, initial=RETRY_INITIAL, maximum=RETRY_MAX, jitter=random.random())
            await self.store.callback_retry(callback.seq, attempts, time.time() + delay, error)
            log.info("callback retry", id=callback.message.id, status=callback.status, attempts=attempts,
                     delay_s=round(delay, 3), error=error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # the outcome not recorded: the lease runs out and it is sent again
            log.warning("callback outcome not recorded", id=callback.message.id, error=str(exc))
