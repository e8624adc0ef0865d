"""The floor under the gateway: what the design card's own steps cost, rung by rung, in one run.

    python bench/floor.py [--persons 1000000] [--duration 6] [--runs 3]

A server in this script answers the signed MOs of bench/e2e.py doing only what the design card
asks of every message, one step added per rung:

    bare     read the JSON body, answer a constant (bench/e2e.py's control)
    parse    + the signature (HMAC-SHA256), the JSON, the text through the Lark LALR grammar
    lookup   + the one joined lookup the command needs (SqliteStore, aiosqlite)
    store    + the MO, a reply and its charge row stored durably (MessageStore, group commit)
    log      + the one summary log line (structlog, JSON, personal data masked)

and then `smsgw serve` itself. All six servers are started at once, each on core 0 with a fresh
copy of the store, and wrk on core 1 measures them in rounds, each once per round, the order
turning from round to round, so that a drift of the shared host falls on all of them alike;
printed: requests/s, CPU per request, and the ratio to bare (medians of the rounds).
The rungs leave out everything else smsgw does (carrier adapters, the dispatcher's rules, the
reply's text and segments, billing decisions, protection, metrics, intake, error replies), so
the `log` rung is a floor: this design, with these libraries, cannot answer faster than it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

from e2e import SECRET, Bench, fresh_copy, message_mix, seeded_store, serve_until_killed, start, stop

RUNGS = ("bare", "parse", "lookup", "store", "log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floor-server", choices=RUNGS, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        return asyncio.run(serve(RUNGS.index(args.floor_server), args.db))

    db = seeded_store(args.persons)
    args.connections = 64
    with tempfile.TemporaryDirectory(prefix="smsgw-floor-") as tmp:
        bench = Bench(Path(tmp), db, message_mix(db, 200_000, random.Random(8079)), args)
        servers = {}
        try:
            for rung in RUNGS:
                directory = Path(tmp) / rung
                directory.mkdir()
                served = fresh_copy(db, directory)
                servers[rung] = start([sys.executable, __file__, "--floor-server", rung, "--db", str(served)], "0")
            servers["smsgw"] = bench.smsgw("smsgw", 1, "0")
            names = list(servers)
            for run in range(args.runs + 1):   # every server once per round, the order turning each round
                for name in names[run % len(names):] + names[:run % len(names)]:
                    bench.closed_loop(name, *servers[name], run, "1")
        finally:
            for process, _ in servers.values():
                stop(process)
        bare = bench.median("bare", "rate")
        print(f"\n{'rung':8s} {'req/s':>9s} {'CPU us/req':>11s} {'ratio to bare':>14s}   (medians of {args.runs} rounds)")
        for name in names:
            rate = bench.median(name, "rate")
            print(f"{name:8s} {rate:9,.0f} {bench.median(name, 'cpu_us'):11,.0f} {rate / bare:14.2f}")


async def serve(level: int, db: str) -> None:
    from aiohttp import web

    from smsgw.adapters.generic import verify
    from smsgw.billing import MessageType
    from smsgw.store import SqliteMessageStore, SqliteStore
    from smsgw.wire import InboundMessage, OutboundMessage
    from smsgw.ids import new_id
    from smsgw.language import ParseError, parse
    from smsgw.logs import configure_logging, get_logger

    records = await SqliteStore.open(db) if level >= RUNGS.index("lookup") else None
    messages = await SqliteMessageStore.open(db) if level >= RUNGS.index("store") else None
    configure_logging()
    log = get_logger(component="gateway")
    today = date.today()

    async def mo(request: web.Request) -> web.Response:
        body = await request.read()
        if level == 0:
            return web.json_response({"mo_id": json.loads(body)["id"], "replies": []})
        if not verify(SECRET, body, request.headers.get("X-Smsgw-Signature", "")):
            return web.json_response({"error": "bad signature"}, status=401)
        data = json.loads(body)
        command = parse(data["text"], today=today)
        name = None if isinstance(command, ParseError) else command.name
        if records is not None and name is not None:
            await lookup(records, command)
        mo_id, mt_id = new_id(), new_id()
        if messages is not None:
            inbound = InboundMessage("generic", data["id"], data["from"], data["to"], data["text"],
                                     datetime.now(timezone.utc))
            reply = OutboundMessage(mt_id, mo_id, data["id"], "generic", "8079", data["from"], "ok", "gsm7", 1,
                                    MessageType.CHARGED)
            await messages.store_mo(inbound, mo_id=mo_id, mode="sync", command=name, error=None, replies=[reply],
                                    now=time.time())
        if level >= RUNGS.index("log"):
            log.info("message", carrier="generic", carrier_id=data["id"], mo_id=mo_id, mode="sync", command=name,
                     outcome="ok", error=None, duplicate=False, message_type=1, segments=1, status=200,
                     latency_ms=1.0)
        return web.json_response({"mo_id": mo_id, "replies": [{"id": mt_id, "text": "ok"}]})

    app = web.Application()
    app.router.add_post("/carriers/{name}/mo", mo)
    await serve_until_killed(app, "floor")


async def lookup(records, command) -> object:
    """The one lookup smsgw's dispatcher makes for `command` (dispatch.py)."""
    from smsgw.commands import HS, QT, THE, IdKind

    if isinstance(command, QT):
        return await records.person_with_periods(command.person, personal_id=command.id_kind is IdKind.PERSONAL_ID)
    if isinstance(command, THE):
        if command.id_kind is IdKind.CARD:
            return await records.card_with_holder(command.id)
        return await records.person_with_latest_card(command.id, personal_id=command.id_kind is IdKind.PERSONAL_ID)
    if isinstance(command, HS):
        return await records.dossier(command.dossier)
    return None


if __name__ == "__main__":
    main()
