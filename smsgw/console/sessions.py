"""Login and logout (auth.py has the rules: argon2, the lockout, the cookies)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from ..clock import VIETNAM
from ..gateway import CONFIG
from ..logs import mask_text
from .auth import LOGIN_COOKIE, SESSION_COOKIE, LoginResult, log_in, new_token, same_token, session_of, start_session
from .web import CONSOLE_STORE, PREFIX, audit, page, read_form, redirect, refusal, render, set_cookie, visitor

routes = web.RouteTableDef()
LOGIN_COOKIE_SECONDS = 3600


def _next(target: str | None) -> str:
    """Where to go after login: a console path, never another site."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


def _login_page(request: web.Request, *, error: str = "", status: int = 200, name: str = "") -> web.Response:
    token = new_token()
    response = render(request, "login.html", {"login_csrf": token, "error": error, "name": name,
                                              "next": _next(request.query.get("next"))}, status=status)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=LOGIN_COOKIE_SECONDS)
    return response


@routes.get(f"{PREFIX}/login")
async def login_form(request: web.Request) -> web.Response:
    if await session_of(request.app[CONSOLE_STORE], request.cookies.get(SESSION_COOKIE)) is not None:
        return redirect(f"{PREFIX}/")
    return _login_page(request)


@routes.post(f"{PREFIX}/login")
async def login(request: web.Request) -> web.Response:
    form = await read_form(request)
    if form is None or not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")):
        return refusal(request, 403, "Thiếu hoặc sai mã chống giả mạo (CSRF). Hãy tải lại trang đăng nhập.")
    name, password = form.get("name", "").strip(), form.get("password", "")
    store = request.app[CONSOLE_STORE]
    outcome = await log_in(store, name, password)
    shown = mask_text(name[:64]) or "(trống)"
    if outcome.result is LoginResult.OK:
        config = request.app[CONFIG].console
        token = await start_session(store, name, hours=config.session_hours, address=request.remote or "?")
        await audit(request, "login", "đăng nhập", actor=name)
        response = redirect(_next(form.get("next")))
        set_cookie(response, request, SESSION_COOKIE, token, max_age=int(config.session_hours * 3600))
        response.del_cookie(LOGIN_COOKIE, path=f"{PREFIX}/")
        return response
    if outcome.result is LoginResult.LOCKED:
        until = datetime.fromtimestamp(outcome.locked_until or 0, VIETNAM).strftime("%H:%M")
        await audit(request, "login_locked", "đăng nhập khi tài khoản bị khoá", actor=shown)
        return _login_page(request, status=403, name=name,
                           error=f"Tài khoản bị khoá do đăng nhập sai nhiều lần, đến {until} (giờ Việt Nam).")
    await audit(request, "login_failed", "sai tên hoặc mật khẩu", actor=shown)
    return _login_page(request, status=401, name=name, error="Sai tên tài khoản hoặc mật khẩu.")


@routes.post(f"{PREFIX}/logout")
@page()
async def logout(request: web.Request) -> web.Response:
    from .auth import token_hash

    await request.app[CONSOLE_STORE].end_session(token_hash(request.cookies[SESSION_COOKIE]))
    await audit(request, "logout", "đăng xuất", actor=visitor(request).name)
    response = redirect(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path=f"{PREFIX}/")
    return response
