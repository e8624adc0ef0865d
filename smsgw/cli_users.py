"""`smsgw users add NAME --role admin|staff|viewer --db DB` and `smsgw users list --db DB`: the
operator console's accounts (CONTRACT §9).

The password is read from the terminal (asked twice, not echoed) or, when standard input is not
a terminal, from its first line (for scripts: `printf '%s\\n' "$PW" | smsgw users add ...`).
It is stored as an argon2id hash only. Each addition goes to the console's audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time

from .cli_checks import UserError, database_path


def read_password(prompt: str = "Mật khẩu / password: ") -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Nhập lại / again: ") != first:
            raise UserError("the two passwords differ: nothing was changed")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def cmd_users_add(args: argparse.Namespace) -> int:
    from .console.auth import hash_password, name_problem, password_problem
    from .store import open_console, require_current

    if problem := name_problem(args.name):
        raise UserError(f"NAME {args.name!r}: {problem}")
    database_path(args.db)
    asyncio.run(require_current(args.db))   # the console's tables come with `smsgw db migrate`
    password = read_password()
    if problem := password_problem(password):
        raise UserError(f"password: {problem}")
    hashed = hash_password(password)

    async def add() -> bool:
        store = await open_console(args.db)
        try:
            now = time.time()
            added = await store.add_account(args.name, args.role, hashed, now=now)
            if added:
                await store.audit(at=now, actor=f"cli:{getpass.getuser()}", action="account",
                                  detail=f"thêm tài khoản {args.name} ({args.role})", address="local")
            return added
        finally:
            await store.close()

    if not asyncio.run(add()):
        raise UserError(f"NAME {args.name!r}: an account of that name exists already")
    print(f"added {args.role} {args.name}", file=sys.stderr)
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from .store import open_console, require_current

    database_path(args.db)
    asyncio.run(require_current(args.db))

    async def listed():
        store = await open_console(args.db)
        try:
            return await store.accounts()
        finally:
            await store.close()

    now = time.time()
    for account in asyncio.run(listed()):
        locked = " locked" if account.locked_until and account.locked_until > now else ""
        print(f"{account.name}\t{account.role}{locked}")
    return 0


def add_user_commands(sub: argparse._SubParsersAction, *, db_help: str) -> None:
    users = sub.add_parser("users", help="the operator console's accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="USERS_COMMAND")
    p = users_sub.add_parser("add", help="add a console account; the password from the terminal or stdin")
    p.add_argument("name", metavar="NAME", help="1-64 ASCII letters, digits, '.', '_' or '-'")
    p.add_argument("--role", required=True, choices=("admin", "staff", "viewer"),
                   help="viewer reads (numbers masked); staff also answers and simulates; admin also manages")
    p.add_argument("--db", required=True, metavar="DB", help=db_help)
    p.set_defaults(func=cmd_users_add)
    p = users_sub.add_parser("list", help="the console's accounts, their roles, and which are locked")
    p.add_argument("--db", required=True, metavar="DB", help=db_help)
    p.set_defaults(func=cmd_users_list)
