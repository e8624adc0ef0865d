"""`smsgw api-keys create|revoke`: the sending API's keys (CONTRACT §8; api_keys.py)."""

from __future__ import annotations

import argparse
import asyncio

from .cli_checks import database_path

DB_HELP = "records database: an SQLite file or a postgresql:// URL (required); the gateway's messages are in it"


def cmd_api_keys_create(args: argparse.Namespace) -> int:
    from .api_keys import create_key

    classes = [name.strip() for name in args.classes.split(",") if name.strip()]

    async def run() -> tuple[str, str]:
        async with api_store(args.db) as store:
            return await create_key(store, args.name, classes=classes, rate=args.rate,
                                    long_messages=args.long_messages)

    key, secret = asyncio.run(run())
    print(f"key {args.name} created (classes {','.join(dict.fromkeys(classes))}, "
          f"rate {args.rate or 'unlimited'}{' per minute' if args.rate else ''})")
    print(f"api key:         {key}")
    print(f"callback secret: {secret}")
    print("both are shown this once: only a hash of the key is stored")
    return 0


def cmd_api_keys_revoke(args: argparse.Namespace) -> int:
    from .api_keys import revoke_key

    async def run() -> None:
        async with api_store(args.db) as store:
            await revoke_key(store, args.name)

    asyncio.run(run())
    print(f"key {args.name} revoked")
    return 0


def api_store(db: str):
    """The API store on `--db` (an async context manager), its message store closed on leaving."""
    from contextlib import asynccontextmanager

    from .store import is_postgres, open_messages, require_current
    from .store.api_open import open_api

    @asynccontextmanager
    async def opened():
        if is_postgres(db):   # its tables are made by `smsgw db migrate` (an SQLite file's by the store itself)
            await require_current(db)
        messages = await open_messages(database_path(db))
        try:
            yield await open_api(messages)
        finally:
            await messages.close()

    return opened()


def add_api_commands(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("api-keys", help="keys of the sending API (POST /api/v1/messages, /batches)")
    keys_sub = keys.add_subparsers(dest="api_keys_command", required=True, metavar="API_KEYS_COMMAND")
    p = keys_sub.add_parser("create", help="make a key; prints the key and its callback secret once")
    p.add_argument("name", metavar="NAME", help="the client's name (letters, digits, . _ -), unique")
    p.add_argument("--classes", default="otp,notice,info", metavar="LIST",
                   help="classes the key may send, comma-separated: otp, notice, info (default all three)")
    p.add_argument("--rate", type=int, default=0, metavar="PER_MINUTE",
                   help="requests per minute taken from this key, counted across gateways (default 0: no limit)")
    p.add_argument("--long-messages", action="store_true",
                   help="may send texts over 3 SMS parts (default: refused with 422)")
    p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
    p.set_defaults(func=cmd_api_keys_create)
    p = keys_sub.add_parser("revoke", help="end a key: its requests get 401 from now on")
    p.add_argument("name", metavar="NAME", help="the name the key was created with")
    p.add_argument("--db", required=True, metavar="PATH", help=DB_HELP)
    p.set_defaults(func=cmd_api_keys_revoke)
