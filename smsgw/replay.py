"""`smsgw replay`: transcripts (transcripts.py) through the message path, in-process or over HTTP.

In-process, each message goes through `service.Service` over a records database and is stored
with its reply as a carrier's sync MO is (intake.take_locally: a question gets its number, an
opt-out is recorded): `--db`, or by
default a fresh one seeded with 100 persons in a temporary folder, removed afterwards; the
process is pinned to one core (`workers.pin_to_one_core`). With a URL, each message is posted,
signed, to a generic-format carrier of a running `smsgw serve` (client.py) and its sync replies
are compared: what testers replay is exactly what carriers get.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from . import workers
from .client import replay_message
from .config import Config
from .errors import ReplayError
from .intake import Intake, take_locally
from .progress import Progress
from .service import open_service
from .store import open_messages
from .transcripts import Exchange, Mismatch, replay

SEEDED_PERSONS = 100
"""Persons in the temporary records database of an in-process replay without `--db`."""


@dataclass(frozen=True)
class ReplayRun:
    exchanges: int
    files: int
    mismatches: list[Mismatch]
    seconds: float

    def __str__(self) -> str:
        """The summary line `smsgw replay` prints."""
        count, wrong = self.exchanges, len(self.mismatches)
        rate = count / self.seconds if self.seconds > 0 else 0.0
        return (f"replay: {count} messages from {self.files} file(s): {count - wrong} as expected, "
                f"{wrong} mismatched ({self.seconds:.2f} s, {rate:,.0f} messages/s)")


async def run_replay(exchanges: list[Exchange], files: int, config: Config, *, db: str | None = None,
                     url: str | None = None, carrier: str = "generic", secret: str | None = None) -> ReplayRun:
    """Replay `exchanges` (read from `files` files) in-process, or to `url` when given."""
    if not url:
        workers.pin_to_one_core()
    started = time.perf_counter()
    with Progress(len(exchanges), "replay") as progress:
        if url:
            mismatches = await replay_over_http(exchanges, config, url, carrier, secret, progress.advance)
        else:
            mismatches = await replay_in_process(exchanges, config, db, progress.advance)
    return ReplayRun(len(exchanges), files, mismatches, time.perf_counter() - started)


async def replay_in_process(exchanges: list[Exchange], config: Config, db: str | None,
                            advance: Callable[[], None]) -> list[Mismatch]:
    """Through a `Service` over `db`, or over a temporary seeded database when `db` is None."""
    with tempfile.TemporaryDirectory(prefix="smsgw-replay-") as tmp:
        if db is None:
            from .seed import seed_database

            db = str(Path(tmp) / "records.db")
            await seed_database(db, SEEDED_PERSONS, 0, progress=False)
        async with open_service(db, config) as service:
            store = await open_messages(db)
            try:
                intake = Intake(service, store, None, shortcode=config.shortcode)

                async def send(sender: str, text: str) -> list[str]:
                    return [mt.text for mt in (await take_locally(intake, sender, text)).replies]

                return await replay(exchanges, send, advance)
            finally:
                await store.close()


async def replay_over_http(exchanges: list[Exchange], config: Config, url: str, carrier_name: str,
                           secret: str | None, advance: Callable[[], None]) -> list[Mismatch]:
    """Through `{url}/carriers/{carrier_name}/mo`, a generic-format carrier in sync mode.

    The secret is `secret`, else the carrier's in `config`; messages go to the carrier's first
    number, else the short code (the gateway refuses another short code's MO).
    """
    carrier = config.carriers.get(carrier_name)
    if carrier is not None and not hasattr(carrier, "secret"):
        raise ReplayError(f"--carrier {carrier_name}: replay --url sends the generic carrier's signed JSON, "
                          f"and {carrier_name} is a {carrier.adapter} carrier")
    secret = secret if secret is not None else (carrier.secret if carrier else None)
    to = carrier.numbers[0] if carrier and carrier.numbers else config.shortcode
    run_id = uuid.uuid4().hex[:12]
    counter = iter(range(1, 1 << 62))

    async with aiohttp.ClientSession() as session:
        async def send(sender: str, text: str) -> list[str]:
            mo_id = f"replay-{run_id}-{next(counter)}"
            replies = await replay_message(session, url, carrier_name, secret, sender, text, mo_id, to=to)
            return [r["text"] for r in replies]

        return await replay(exchanges, send, advance)
