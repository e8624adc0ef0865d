"""The operator's commands of CONTRACT §11: `config check`, `db prune`, `db backup`, `data export|erase`.

`add_operations_commands` adds their parsers to smsgw/cli.py's; failures are reported by
cli.main like every other command's (`smsgw: <what and where>`, exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .cli_checks import UserError, database_path, phone_option

DB_HELP = "records database: an SQLite file or a postgresql:// URL (required)"
SQLITE_DB_HELP = ("records database: an SQLite file (required; for a postgresql:// URL use pg_dump, or base "
                  "backups with WAL archiving)")


def cmd_config_check(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .config_check import render_json, render_toml

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            print(f"smsgw: {problem}", file=sys.stderr)
        return 1
    print(render_json(config) if args.json else render_toml(config))
    return 0


def _retention_store(args: argparse.Namespace):   # -> Config, after the --db and --config checks
    from .config import load_config

    config = load_config(args.config)
    database_path(args.db)
    return config


def cmd_db_prune(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .clock import VIETNAM
    from .retention import cutoff, prune
    from .store.schema import shown

    config = _retention_store(args)
    now = None
    if args.now is not None:
        try:
            moment = datetime.fromisoformat(args.now)
        except ValueError:
            raise UserError(f"--now {args.now!r}: not an ISO date or time (2025-06-30 or 2025-06-30T12:00:00+07:00)")
        now = (moment if moment.tzinfo else moment.replace(tzinfo=VIETNAM)).timestamp()
    started = time.perf_counter()
    done = prune(args.db, config, now=now)
    limit = datetime.fromtimestamp(cutoff(config, now or time.time()), VIETNAM).isoformat(timespec="seconds")
    rows = ", ".join(f"{table} {count:,}" for table, count in sorted(done.items())) or "nothing to erase"
    print(f"pruned {shown(args.db)}: data before {limit} ({config.retention.days} days): {rows} "
          f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    from .store import backup_database

    database_path(args.db)
    target = Path(args.to)
    if target.exists() and not args.force:
        raise UserError(f"--to {args.to}: exists; give --force to replace it")
    if target.is_dir() or not target.parent.is_dir():
        raise UserError(f"--to {args.to}: " + ("is a directory; name a file to write" if target.is_dir()
                                                else f"the folder {target.parent} does not exist"))
    if target.resolve() == Path(args.db).resolve():
        raise UserError(f"--to {args.to}: is the database itself")
    started = time.perf_counter()
    size = backup_database(args.db, args.to)
    print(f"backed up {args.db} to {args.to}: {size:,} bytes in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return 0


def cmd_data_export(args: argparse.Namespace) -> int:
    from .retention import export_phone

    phone = phone_option(args.phone, "--phone")
    config = _retention_store(args)
    sys.stdout.write(json.dumps(export_phone(args.db, config, phone), ensure_ascii=False, indent=2) + "\n")
    return 0


def cmd_data_erase(args: argparse.Namespace) -> int:
    from .retention import erase_phone

    phone = phone_option(args.phone, "--phone")
    config = _retention_store(args)
    done = erase_phone(args.db, config, phone)
    print("erased: " + ", ".join(f"{table} {count}" for table, count in done.items()), file=sys.stderr)
    if done.get("opt_outs_kept"):
        print(f"kept: the opt-out of {args.phone} (BH TC) stays in force, or notices would start again; "
              "the citizen ends it by sending BH DK", file=sys.stderr)
    return 0


def add_operations_commands(sub: argparse._SubParsersAction, db_sub: argparse._SubParsersAction, *,
                            config_help: str) -> None:
    """`smsgw db prune`, `smsgw db backup`, `smsgw config check` and `smsgw data export|erase`."""
    p = db_sub.add_parser("prune", help="erase message texts and phone numbers older than [retention] days")
    p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
    p.add_argument("--config", metavar="FILE", help=config_help + "; [retention] days and hash_key")
    p.add_argument("--now", metavar="WHEN",
                   help="prune as at this ISO date or time, Vietnam time unless it says (default: now)")
    p.set_defaults(func=cmd_db_prune)
    p = db_sub.add_parser("backup", help="a consistent copy of the database, taken while the gateway serves")
    p.add_argument("--db", required=True, metavar="PATH", help=SQLITE_DB_HELP)
    p.add_argument("--to", required=True, metavar="FILE", help="the copy to write (refused if it exists)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists (default: refused)")
    p.set_defaults(func=cmd_db_backup)

    config = sub.add_parser("config", help="the configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="CONFIG_COMMAND")
    p = config_sub.add_parser("check", help="print the effective configuration, secrets hidden; exit 1 naming "
                              "each problem")
    p.add_argument("--config", metavar="FILE", help=config_help)
    p.add_argument("--json", action="store_true", help="print JSON (default: TOML text)")
    p.set_defaults(func=cmd_config_check)

    data = sub.add_parser("data", help="a citizen's data request: export or erase what is stored about a phone")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    p = data_sub.add_parser("export", help="everything stored about one phone, as JSON")
    p.set_defaults(func=cmd_data_export)
    q = data_sub.add_parser("erase", help="erase one phone's texts and number at any age (billing rows hashed)")
    q.set_defaults(func=cmd_data_erase)
    for p in (p, q):
        p.add_argument("--phone", required=True, metavar="MSISDN", help="0912345678, 84912345678 or +84912345678")
        p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
        p.add_argument("--config", metavar="FILE", help=config_help + "; [retention] hash_key")

