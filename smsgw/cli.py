"""The `smsgw` command line (README "Command line").

Exit codes: 0 success; 1 a failure the user can fix (a replay mismatch, a refused import, a
bad config file, database, address or phone number), printed as one line `smsgw: <what and
where>` and never as a Python traceback (`smsgw.cli_checks`); 2 wrong usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from . import __version__
from .cli_checks import (
    UserError, cannot_listen, database_path, describe_failure, http_url, is_listen_error, listen_address, notice_day,
    phone_option,
)
from .cli_api import add_api_commands
from .cli_faq import add_faq_commands
from .cli_operations import add_operations_commands
from .cli_questions import add_questions_commands
from .cli_reports import add_report_commands
from .cli_users import add_user_commands


def _print_json(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


# --- parse -----------------------------------------------------------------------------

def cmd_parse(args: argparse.Namespace) -> int:
    from .service import parse_result

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
    from .store.schema import shown

    print(f"seeded {shown(args.db)}: {summary} in {elapsed:.1f} s", file=sys.stderr)
    return 0


def cmd_db_import(args: argparse.Namespace) -> int:
    from .importer import import_directory

    if not Path(args.directory).is_dir():
        raise UserError(f"{args.directory}: not a directory (it holds persons.csv and the other CSV files)")
    database_path(args.db, create=True)
    summary = asyncio.run(import_directory(args.directory, args.db))   # ImportFailed: main says "refused"
    from .store.schema import shown

    print(f"imported into {shown(args.db)}: {summary}", file=sys.stderr)
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from .store import migrate
    from .store.schema import shown

    database_path(args.db, create=True)
    before, after = asyncio.run(migrate(args.db))
    change = f"schema version {before} -> {after}" if after != before else f"schema version {after}, up to date"
    print(f"migrated {shown(args.db)}: {change}", file=sys.stderr)
    return 0


# --- send / replay -----------------------------------------------------------------------

def cmd_send(args: argparse.Namespace) -> int:
    from .config import load_config
    from .service import open_service

    sender = phone_option(args.sender, "--from")
    database_path(args.db)
    config = load_config(args.config)

    async def run() -> dict:
        from .intake import LocalAnswers

        async with open_service(args.db, config) as service:
            local = LocalAnswers(service, args.db, config.shortcode)
            try:
                outcome, replies = await local.answer(sender, args.text)
            finally:
                await local.close()
        if not replies:   # a sender protection never answers (protection.py)
            raise UserError(f"--from {args.sender!r}: the gateway never answers this sender")
        reply, *more = replies
        printed = {
            "reply": reply.text, "encoding": reply.encoding, "segments": reply.segments,
            "message_type": int(reply.message_type), "command": outcome.command, "error": outcome.error,
        }
        if more:   # a question the FAQ answers: that answer follows at once
            printed["more"] = [{"reply": mt.text, "encoding": mt.encoding, "segments": mt.segments,
                                "message_type": int(mt.message_type)} for mt in more]
        return printed

    _print_json(asyncio.run(run()))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .config import load_config
    from .replay import run_replay
    from .transcripts import load_transcripts

    if args.url is not None:
        http_url(args.url, "--url")
    config = load_config(args.config)   # refused before a store is seeded for nothing
    exchanges = load_transcripts(args.files)
    if args.db is not None:
        database_path(args.db)
    if not exchanges:
        raise UserError("no messages in " + ", ".join(args.files))
    run = asyncio.run(run_replay(exchanges, len(args.files), config, db=args.db, url=args.url,
                                 carrier=args.carrier, secret=args.secret))
    for mismatch in run.mismatches:
        print(mismatch.describe(), file=sys.stderr)
    print(run)
    return 1 if run.mismatches else 0


# --- serve -------------------------------------------------------------------------------

MAX_WORKERS = 256


def cmd_serve(args: argparse.Namespace) -> int:
    from .config import serving_config

    from .store import require_current

    config = serving_config(args.config)   # refuses no --config, and a config without carriers
    database_path(args.db)
    asyncio.run(require_current(args.db))   # OutdatedSchema names `smsgw db migrate`
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UserError(f"--workers {args.workers}: must be 1-{MAX_WORKERS} (one per core is the useful most)")
    index, count = 0, 1
    if args.worker:
        index, count = (int(part) for part in args.worker.split("/"))
    listen_address(args.host, args.port, shared=count > 1)   # the supervisor holds the workers' port
    from .workers import serve_worker, supervise

    try:
        if args.workers > 1:
            argv = ["--db", args.db, "--host", args.host] + (["--config", args.config] if args.config else [])
            return supervise(argv, host=args.host, port=args.port, workers=args.workers)
        serve_worker(config, db_path=args.db, host=args.host, port=args.port, index=index, count=count)
    except OSError as exc:   # taken between the check above and the bind
        if is_listen_error(exc):
            raise UserError(cannot_listen(args.host, args.port, exc)) from None
        raise
    return 0


# --- notify / billing / report -------------------------------------------------------------

def cmd_notify(args: argparse.Namespace) -> int:
    import logging

    from .config import load_config
    from .logs import configure_logging
    from .notices import notify
    from .store import require_current

    config = load_config(args.config)
    configure_logging(level=logging.WARNING)   # the summary is the report; failures are logged
    db = database_path(args.db)
    asyncio.run(require_current(db))   # OutdatedSchema names `smsgw db migrate`
    days = getattr(args, "days", 0)
    today = notice_day(getattr(args, "today", None), days)
    summary = asyncio.run(notify(args.kind, db, config, today=today, days=days))
    print(summary)
    return 0


# --- main --------------------------------------------------------------------------------

DB_HELP = "records database: an SQLite file, or a postgresql:// URL (required)"
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
                   help="SQLite file to create (its folder must exist) or postgresql:// URL; refused if it already holds"
                   " records; the schema is migrated first")
    p.add_argument("--persons", type=int, required=True, metavar="N", help="number of synthetic persons (required)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed: the same seed gives the same records (default 0)")
    p.set_defaults(func=cmd_db_seed)
    p = db_sub.add_parser("import", help="load persons/periods/cards/dossiers CSV files, all or nothing")
    p.add_argument("directory", metavar="DIR",
                   help="directory holding persons.csv and optional periods.csv, cards.csv, dossiers.csv")
    p.add_argument("--db", required=True, metavar="PATH",
                   help="SQLite file to merge into (created if missing; its folder must exist) or postgresql:// URL;"
                   " the schema is migrated first")
    p.set_defaults(func=cmd_db_import)
    p = db_sub.add_parser("migrate", help="create or upgrade the database's schema (numbered steps, idempotent)")
    p.add_argument("--db", required=True, metavar="PATH",
                   help="SQLite file (created if missing; its folder must exist) or postgresql:// URL")
    p.set_defaults(func=cmd_db_migrate)

    add_operations_commands(sub, db_sub, config_help=CONFIG_HELP)
    add_api_commands(sub)

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
    r = notify_sub.add_parser("dossier-results",
                              help="to the holder of every dossier an import moved to needs_more, approved, rejected"
                                   " or returned (once per dossier and status; `serve` sends them by itself too)")
    r.set_defaults(kind="dossier_result")
    for p in (p, q, r):
        p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
        p.add_argument("--config", metavar="FILE",
                       help="TOML configuration file: [notices], the carriers and their networks (default: none, "
                            "so no carrier takes the notices)")
        if p is not r:   # a dossier result's day is the import's
            p.add_argument("--today", metavar="YYYY-MM-DD",
                           help="run as on this day, to catch up a missed run (default: today in Vietnam, UTC+07:00)")
        p.set_defaults(func=cmd_notify)

    add_report_commands(sub, db_help=DB_HELP, config_help=CONFIG_HELP)
    add_questions_commands(sub, db_help=DB_HELP, config_help=CONFIG_HELP)
    add_faq_commands(sub, db_help=DB_HELP)
    add_user_commands(sub, db_help=DB_HELP)
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
