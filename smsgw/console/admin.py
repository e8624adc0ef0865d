"""Accounts and the audit log (admins only): add an account, change its role or password, lift a
lock, remove it. Every change is written to the audit log; an admin cannot remove or demote
their own account (the console is never left without the admin doing it)."""

from __future__ import annotations

import time

from aiohttp import web

from ..store import ROLES
from .auth import ROLE_LABELS, Role, hash_off_loop, name_problem, password_problem
from .web import CONSOLE_STORE, PREFIX, audit, form, page, redirect, render, visitor

routes = web.RouteTableDef()
ACTIONS = ("add", "role", "password", "unlock", "remove")


async def _page(request: web.Request, *, error: str = "", done: str = "", status: int = 200) -> web.Response:
    store = request.app[CONSOLE_STORE]
    return render(request, "accounts.html", {"title": "Tài khoản", "accounts": await store.accounts(), "now": time.time(),
                                             "roles": ROLES, "role_labels": ROLE_LABELS, "error": error, "done": done},
                  status=status)


@routes.get(f"{PREFIX}/accounts")
@page(Role.ADMIN)
async def accounts(request: web.Request) -> web.Response:
    return await _page(request, done=request.query.get("done", "")[:200])


@routes.post(f"{PREFIX}/accounts")
@page(Role.ADMIN)
async def change(request: web.Request) -> web.Response:
    data = form(request)
    action, name = data.get("action", ""), data.get("name", "").strip()
    store = request.app[CONSOLE_STORE]
    role = data.get("role", "")
    if action not in ACTIONS:
        return await _page(request, error="Thao tác không hợp lệ.", status=400)
    if problem := name_problem(name):
        return await _page(request, error=problem, status=400)
    if action in ("add", "role") and role not in ROLES:
        return await _page(request, error="Vai trò phải là viewer, staff hoặc admin.", status=400)
    if action in ("add", "password") and (problem := password_problem(data.get("password", ""))):
        return await _page(request, error=problem, status=400)
    if name == visitor(request).name and action in ("role", "remove"):
        return await _page(request, error="Không thể đổi vai trò hay xoá tài khoản của chính mình.", status=400)
    if action == "add":
        done = await store.add_account(name, role, await hash_off_loop(data["password"]), now=time.time())
        what = f"thêm tài khoản {name} ({role})"
    elif action == "role":
        done = await store.set_role(name, role)
        what = f"đổi vai trò của {name} thành {role}"
    elif action == "password":
        done = await store.set_password(name, await hash_off_loop(data["password"]))
        what = f"đặt lại mật khẩu của {name}"
    elif action == "unlock":
        done = await store.unlock(name)
        what = f"mở khoá tài khoản {name}"
    else:
        done = await store.remove_account(name)
        what = f"xoá tài khoản {name}"
    if not done:
        reason = f"Tài khoản {name} đã có." if action == "add" else f"Không có tài khoản {name}."
        return await _page(request, error=reason, status=409 if action == "add" else 404)
    await audit(request, "account", what)
    return redirect(f"{PREFIX}/accounts?done=ok")


@routes.get(f"{PREFIX}/audit")
@page(Role.ADMIN)
async def audit_log(request: web.Request) -> web.Response:
    entries = await request.app[CONSOLE_STORE].audit_log()
    return render(request, "audit.html", {"title": "Nhật ký thao tác", "entries": entries})
