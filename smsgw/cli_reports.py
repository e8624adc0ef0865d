"""`smsgw billing export|summary` and `smsgw report understanding`: the commands that read the
stored messages (the ledger and the understanding report) through the store's reports reader."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .cli_checks import day_option, month_option, open_message_store, output_file

if TYPE_CHECKING:
    from .store import MessageReports


@contextlib.contextmanager
def _billing_month(args: argparse.Namespace) -> Iterator[MessageReports]:
    """The reports' reader of the message store, once the config and `--month` are checked."""
    from .config import load_config

    load_config(args.config)
    month_option(args.month)
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
    from .clock import VIETNAM
    from .reports import format_understanding, understanding

    config = load_config(args.config)
    since = day_option(args.since, "--since")
    start = datetime(since.year, since.month, since.day, tzinfo=VIETNAM).timestamp() if since else None
    conn = open_message_store(args.db)
    try:
        print(format_understanding(understanding(conn, start, frozenset(config.routes)), since=args.since))
    finally:
        conn.close()
    return 0


def cmd_report_satisfaction(args: argparse.Namespace) -> int:
    from .satisfaction import format_satisfaction, satisfaction

    with _billing_month(args) as conn:
        print(format_satisfaction(satisfaction(conn, args.month)))
    return 0


def add_report_commands(sub: argparse._SubParsersAction, *, db_help: str, config_help: str) -> None:
    """The `billing` and `report` command groups."""
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
        p.add_argument("--db", required=True, metavar="PATH", help=db_help + "; the gateway's messages are in it")
        p.add_argument("--config", metavar="FILE", help=config_help)

    report = sub.add_parser("report", help="reports on the stored messages")
    report_sub = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    p = report_sub.add_parser("understanding", help="share of messages understood, errors, shapes not understood")
    p.add_argument("--since", metavar="YYYY-MM-DD",
                   help="only messages from this day on, Vietnam time (default: every stored message)")
    p.add_argument("--db", required=True, metavar="PATH", help=db_help + "; the gateway's messages are in it")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.set_defaults(func=cmd_report_understanding)
    p = report_sub.add_parser("satisfaction", help="the month's ratings (BH DG): count, mean, satisfaction index "
                                                   "beside the agency's targets, comments (phones masked)")
    p.add_argument("--month", required=True, metavar="YYYY-MM", help="a calendar month of Vietnam time (required)")
    p.add_argument("--db", required=True, metavar="PATH", help=db_help + "; the gateway's messages are in it")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.set_defaults(func=cmd_report_satisfaction)
