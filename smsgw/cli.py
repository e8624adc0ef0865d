"""The `smsgw` command line (README "Command line").

Exit codes: 0 success; 1 a failure the user can fix (a replay mismatch, a refused import, a
bad config file, database, address or phone number), printed as one line `smsgw: <what and
where>` and never as a Python traceback (`smsgw.cli_checks`); 2 wrong usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .cli_checks import (
    UserError, cannot_listen, database_path, describe_failure, is_listen_error, listen_address, open_message_store,
    output_file,
)

if TYPE_CHECKING:
    from .store import MessageReports


def _print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def pin_to_one_core(index: int | None = None) -> None:
    """Keep the event loop and aiosqlite's thread on one core.

    A store call hands work to aiosqlite's thread and back; when the two threads run on
    different cores every hand-off crosses caches and costs several times more (measured:
    in-process replay 6k messages/s unpinned vs 12k pinned on 2 cores). One process is one
    core's worth of Python anyway; to use more cores, run more processes.
    """
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) > 1:
            core = allowed[(os.getpid() if index is None else index) % len(allowed)]
            os.sched_setaffinity(0, {core})


# --- parse -----------------------------------------------------------------------------

def parse_result(text: str, today: date | None = None) -> dict:
    """The JSON object `smsgw parse` prints for one message (CONTRACT §2)."""
    from .commands import Month
    from .language import ParseError, parse

    result = parse(text, today=today)
    if isinstance(result, ParseError):
        return {"ok": False, "error": result.error, "reply": result.reply}
    kind = getattr(result, "id_kind", None)
    ident = getattr(result, "person", None) or getattr(result, "id", None) or getattr(result, "dossier", None)
    start: Month | None = getattr(result, "start", None)
    end: Month | None = getattr(result, "end", None)
    return {
        "ok": True, "command": result.name, "id": ident, "id_kind": kind.value if kind else None,
        "from": str(start) if start else None, "to": str(end) if end else None,
    }


def cmd_parse(args: argparse.Namespace) -> int:
    if args.text is not None:
        _print_json(parse_result(args.text))
        return 0
    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"standard input:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
        _print_json(parse_result(line.rstrip("\r\n")))
        sys.stdout.flush()
    return 0


# --- db ----------------------------------------------------------------------------------

def cmd_db_seed(args: argparse.Namespace) -> int:
    from .seed import seed_database

    if args.persons < 0:
        raise UserError("--persons must be 0 or more")
    database_path(args.db, create=True)
    started = time.perf_counter()
    summary = asyncio.run(seed_database(args.db, args.persons, args.seed))
    elapsed = time.perf_counter() - started
    print(f"seeded {args.db}: {summary} in {elapsed:.1f} s", file=sys.stderr)
    return 0


def cmd_db_import(args: argparse.Namespace) -> int:
    from .importer import import_directory

    if not Path(args.directory).is_dir():
        raise UserError(f"{args.directory}: not a directory (it holds persons.csv and the other CSV files)")
    database_path(args.db, create=True)
    summary = asyncio.run(import_directory(args.directory, args.db))   # ImportFailed: main says "refused"
    print(f"imported into {args.db}: {summary}", file=sys.stderr)
    return 0


# --- send / replay -----------------------------------------------------------------------

async def _open_service(db: str, config_path: str | None):
    from .config import load_config
    from .service import Service
    from .store import open_records

    config = load_config(config_path)
    store = await open_records(db)
    return store, Service(store, config)


def _sender(raw: str) -> str:
    from .phones import InvalidPhone, normalize

    try:
        return normalize(raw)
    except InvalidPhone as exc:
        raise UserError(f"--from {raw!r}: {exc}") from None


def cmd_send(args: argparse.Namespace) -> int:
    sender = _sender(args.sender)
    database_path(args.db)

    async def run() -> dict:
        store, service = await _open_service(args.db, args.config)
        try:
            outcome = await service.handle(args.text, sender)
        finally:
            await store.close()
        reply = outcome.reply
        return {
            "reply": reply.text, "encoding": reply.encoding, "segments": reply.segments,
            "message_type": int(reply.message_type), "command": outcome.command, "error": outcome.error,
        }

    _print_json(asyncio.run(run()))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .progress import Progress
    from .transcripts import load_transcripts, replay

    from .config import load_config

    if args.url is not None:
        _http_url(args.url, "--url")
    load_config(args.config)   # refused before a store is seeded for nothing
    exchanges = load_transcripts(args.files)
    if args.db is not None:
        database_path(args.db)
    if not exchanges:
        raise UserError("no messages in " + ", ".join(args.files))

    async def run() -> list:
        with Progress(len(exchanges), "replay") as progress:
            if args.url:
                return await _replay_http(exchanges, args, progress.advance)
            return await _replay_local(exchanges, args, progress.advance)

    if not args.url:
        pin_to_one_core()
    started = time.perf_counter()
    mismatches = asyncio.run(run())
    elapsed = time.perf_counter() - started
    for mismatch in mismatches:
        print(mismatch.describe(), file=sys.stderr)
    rate = len(exchanges) / elapsed if elapsed > 0 else 0.0
    print(f"replay: {len(exchanges)} messages from {len(args.files)} file(s): "
          f"{len(exchanges) - len(mismatches)} as expected, {len(mismatches)} mismatched "
          f"({elapsed:.2f} s, {rate:,.0f} messages/s)")
    return 1 if mismatches else 0


async def _replay_local(exchanges, args, advance) -> list:
    from .transcripts import replay

    with tempfile.TemporaryDirectory(prefix="smsgw-replay-") as tmp:
        db = args.db
        if db is None:
            from .seed import seed_database

            db = str(Path(tmp) / "records.db")
            await seed_database(db, 100, 0, progress=False)
        store, service = await _open_service(db, args.config)
        try:
            async def send(sender: str, text: str) -> list[str]:
                return [(await service.handle(text, sender)).reply.text]

            return await replay(exchanges, send, advance)
        finally:
            await store.close()


async def _replay_http(exchanges, args, advance) -> list:
    import aiohttp

    from .client import replay_message
    from .config import load_config
    from .transcripts import replay

    config = load_config(args.config)
    carrier = config.carriers.get(args.carrier)
    if carrier is not None and not hasattr(carrier, "secret"):
        raise UserError(f"--carrier {args.carrier}: replay --url sends the generic carrier's signed JSON, "
                        f"and {args.carrier} is a {carrier.adapter} carrier")
    secret = args.secret if args.secret is not None else (carrier.secret if carrier else None)
    to = carrier.numbers[0] if carrier and carrier.numbers else config.shortcode   # checked by the gateway
    run_id = uuid.uuid4().hex[:12]
    counter = iter(range(1, 1 << 62))

    async with aiohttp.ClientSession() as session:
        async def send(sender: str, text: str) -> list[str]:
            mo_id = f"replay-{run_id}-{next(counter)}"
            replies = await replay_message(session, args.url, args.carrier, secret, sender, text, mo_id, to=to)
            return [r["text"] for r in replies]

        return await replay(exchanges, send, advance)


def _http_url(raw: str, option: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw)
        parts.port   # noqa: B018 -- raises ValueError for a port that is not a number or out of range
    except ValueError as exc:
        raise UserError(f"{option} {raw}: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{option} {raw}: expected http://HOST:PORT or https://HOST:PORT")
    return raw


# --- serve -------------------------------------------------------------------------------

MAX_WORKERS = 256


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import serving_config

    config = serving_config(args.config)   # refuses no --config, and a config without carriers
    database_path(args.db)
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UserError(f"--workers {args.workers}: must be 1-{MAX_WORKERS} (one per core is the useful most)")
    index, count = 0, 1
    if args.worker:
        index, count = (int(part) for part in args.worker.split("/"))
    listen_address(args.host, args.port, shared=count > 1)   # the supervisor holds the workers' port
    try:
        if args.workers > 1:
            from .workers import supervise

            argv = ["--db", args.db, "--host", args.host] + (["--config", args.config] if args.config else [])
            return supervise(argv, host=args.host, port=args.port, workers=args.workers)
        from .gateway import serve

        pin_to_one_core(index if count > 1 else None)
        serve(config, db_path=args.db, host=args.host, port=args.port, reuse_port=count > 1,
              resume_pending=index == 0)
    except OSError as exc:   # taken between the check above and the bind
        if is_listen_error(exc):
            raise UserError(cannot_listen(args.host, args.port, exc)) from None
        raise
    return 0


# --- notify / billing / report -------------------------------------------------------------

def _day(raw: str | None, option: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise UserError(f"{option} {raw!r}: expected a date YYYY-MM-DD") from None


def cmd_notify(args: argparse.Namespace) -> int:
    import logging

    from datetime import datetime, timedelta

    from .config import load_config
    from .ledger import VIETNAM
    from .logs import configure_logging
    from .notices import notify

    config = load_config(args.config)
    configure_logging(level=logging.WARNING)   # the summary is the report; failures are logged
    db = database_path(args.db)
    days = getattr(args, "days", 0)
    if days < 0:
        raise UserError("--days must be 0 or more")
    today = _day(args.today, "--today") or datetime.now(VIETNAM).date()
    try:
        today + timedelta(days=days + 31)   # the expiry day, and the month after it
    except OverflowError:
        raise UserError(f"--days {days} from {today}: beyond the last date there is (9999-12-31)") from None
    summary = asyncio.run(notify(args.kind, db, config, today=today, days=days))
    print(summary)
    return 0


@contextlib.contextmanager
def _billing_month(args: argparse.Namespace) -> Iterator[MessageReports]:
    """The reports' reader of the message store, once the config and `--month` are checked."""
    from .config import load_config
    from .ledger import month_bounds

    load_config(args.config)
    try:
        start, _ = month_bounds(args.month)
    except ValueError as exc:
        raise UserError(f"--month: {exc}") from None
    if start < 0:
        raise UserError(f"--month {args.month}: before 1970, older than any SMS billed")
    conn = open_message_store(args.db)
    try:
        yield conn
    finally:
        conn.close()


def cmd_billing_export(args: argparse.Namespace) -> int:
    from .ledger import export_csv

    with _billing_month(args) as conn:
        if args.out is None:
            count = export_csv(conn, args.month, sys.stdout, carrier=args.carrier)
        else:
            with output_file(args.out) as out:
                count = export_csv(conn, args.month, out, carrier=args.carrier)
    print(f"billing export {args.month}: {count} rows" + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def cmd_billing_summary(args: argparse.Namespace) -> int:
    from .ledger import format_summary, totals

    with _billing_month(args) as conn:
        print(format_summary(args.month, totals(conn, args.month)))
    return 0


def cmd_report_understanding(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .config import load_config
    from .ledger import VIETNAM
    from .reports import format_understanding, understanding

    config = load_config(args.config)
    since = _day(args.since, "--since")
    start = datetime(since.year, since.month, since.day, tzinfo=VIETNAM).timestamp() if since else None
    conn = open_message_store(args.db)
    try:
        print(format_understanding(understanding(conn, start, frozenset(config.routes)), since=args.since))
    finally:
        conn.close()
    return 0


# --- main --------------------------------------------------------------------------------

DB_HELP = "records database, an SQLite file (required)"
CONFIG_HELP = "TOML configuration file (default: none, the built-in defaults: no carrier, GSM-7 replies)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smsgw", description="SMS keyword gateway for short code 8079.",
        epilog="Exit status: 0 done; 1 a failure you can fix, printed as `smsgw: <what and where>`; 2 wrong usage.")
    parser.add_argument("-V", "--version", action="version", version=f"smsgw {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("parse", help="parse messages and print one JSON object per message")
    p.add_argument("text", nargs="?", metavar="TEXT",
                   help="the message, as a phone would send it (default: every line of standard input, UTF-8)")
    p.set_defaults(func=cmd_parse)

    db = sub.add_parser("db", help="create or load the records database")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    p = db_sub.add_parser("seed", help="create a synthetic, reproducible records database")
    p.add_argument("--db", required=True, metavar="PATH",
                   help="SQLite file to create (its folder must exist); refused if it already holds records")
    p.add_argument("--persons", type=int, required=True, metavar="N", help="number of synthetic persons (required)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed: the same seed gives the same records (default 0)")
    p.set_defaults(func=cmd_db_seed)
    p = db_sub.add_parser("import", help="load persons/periods/cards/dossiers CSV files, all or nothing")
    p.add_argument("directory", metavar="DIR",
                   help="directory holding persons.csv and optional periods.csv, cards.csv, dossiers.csv")
    p.add_argument("--db", required=True, metavar="PATH",
                   help="SQLite file to merge into (created if missing; its folder must exist)")
    p.set_defaults(func=cmd_db_import)

    p = sub.add_parser("send", help="handle one inbound message in-process and print the reply as JSON")
    p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
    p.add_argument("--from", dest="sender", required=True, metavar="MSISDN",
                   help="the sender's phone: 0912345678, 84912345678 or +84912345678 (required)")
    p.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    p.add_argument("text", metavar="TEXT",
                   help='the message as the phone sent it, one argument (quote it: "BH QT 0110129425")')
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("replay", help="replay transcript fixtures; exit 1 on any mismatch")
    p.add_argument("files", nargs="+", metavar="FILE", help="transcript files (UTF-8; `MSISDN > text`, `MSISDN < reply`)")
    p.add_argument("--db", metavar="PATH",
                   help="records database (default: a fresh one seeded with 100 persons, in a temporary folder)")
    p.add_argument("--url", metavar="URL",
                   help="base URL of a running `smsgw serve` to send to, a sync carrier (default: in-process)")
    p.add_argument("--config", metavar="FILE", help=CONFIG_HELP + "; with --url, where the carrier's secret is")
    p.add_argument("--carrier", default="generic", metavar="NAME",
                   help="with --url, the generic-format carrier to post to (default generic)")
    p.add_argument("--secret", metavar="S", help="with --url, that carrier's HMAC secret (default: from --config)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("serve", help="run the HTTP gateway")
    p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
    p.add_argument("--config", metavar="FILE", help="TOML configuration file with at least one [carriers.NAME] "
                   "table (no default: serve refuses to start without one)")
    p.add_argument("--host", default="127.0.0.1", metavar="H",
                   help="address or host name to listen on; 0.0.0.0 or :: for every interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8079, metavar="P",
                   help="TCP port to listen on, 0-65535; 0 picks a free one (default 8079)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes sharing the port (SO_REUSEPORT) and the store, one per core (default 1)")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # "I/N": set by the supervisor for worker I of N
    p.set_defaults(func=cmd_serve)

    notify = sub.add_parser("notify", help="send notices from the brandname (message_type 3, not charged)")
    notify_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="NOTICE")
    p = notify_sub.add_parser("card-expiry", help="to the holder of every card expiring in exactly N days")
    p.add_argument("--days", type=int, required=True, metavar="N",
                   help="cards whose last valid day is today + N, N 0 or more (required)")
    p.set_defaults(kind="card_expiry")
    q = notify_sub.add_parser("payment-reminder",
                              help="to every voluntary participant whose paid-up date falls in this month")
    q.set_defaults(kind="payment_reminder")
    for p in (p, q):
        p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
        p.add_argument("--config", metavar="FILE",
                       help="TOML configuration file: [notices], the carriers and their networks (default: none, "
                            "so no carrier takes the notices)")
        p.add_argument("--today", metavar="YYYY-MM-DD",
                       help="run as on this day, to catch up a missed run (default: today in Vietnam, UTC+07:00)")
        p.set_defaults(func=cmd_notify)

    billing = sub.add_parser("billing", help="the billing ledger, for reconciliation with the carriers")
    billing_sub = billing.add_subparsers(dest="billing_command", required=True, metavar="BILLING_COMMAND")
    p = billing_sub.add_parser("export", help="one CSV row per billing row of the month")
    p.add_argument("--carrier", metavar="NAME", help="only this carrier's rows (default: every carrier)")
    p.add_argument("--out", metavar="FILE", help="write to FILE, its folder existing (default: standard output)")
    p.set_defaults(func=cmd_billing_export)
    q = billing_sub.add_parser("summary", help="totals per carrier and message_type")
    q.set_defaults(func=cmd_billing_summary)
    for p in (p, q):
        p.add_argument("--month", required=True, metavar="YYYY-MM",
                       help="a calendar month of Vietnam time, UTC+07:00 (required)")
        p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP + "; the gateway's messages are in it")
        p.add_argument("--config", metavar="FILE", help=CONFIG_HELP)

    report = sub.add_parser("report", help="reports on the stored messages")
    report_sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    p = report_sub.add_parser("understanding", help="share of messages understood, errors, shapes not understood")
    p.add_argument("--since", metavar="YYYY-MM-DD",
                   help="only messages from this day on, Vietnam time (default: every stored message)")
    p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP + "; the gateway's messages are in it")
    p.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    p.set_defaults(func=cmd_report_understanding)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; whatever it raises is one `smsgw: ...` line and exit 1, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("SMSGW_TRACEBACK"):
            import traceback

            traceback.print_exc()
        print(f"smsgw: {describe_failure(exc, args)}", file=sys.stderr)
        return 1
