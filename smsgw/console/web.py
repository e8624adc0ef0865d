"""The console's request plumbing: who is asking (`page`), what they may do, rendering, the audit.

Every console handler is wrapped by `page(role)`: the session cookie is looked up in the store;
without a live session a GET goes to the login page and a POST is refused (403); a role below
`role` is refused (403), whatever the page shows; a POST without the session's CSRF token is
refused (403). Refusals are pages of their own with the status, never a hidden button only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web

from ..phones import mask
from ..store import ConsoleStore, Session
from .auth import ROLE_LABELS, SESSION_COOKIE, Role, same_token, session_of
from .daily import DailyCounts

CONSOLE_STORE = web.AppKey("console_store", ConsoleStore)
CONSOLE_DB = web.AppKey("console_db", str)
DAILY = web.AppKey("console_daily", DailyCounts)   # the --db the gateway serves (the CSV export reads it)
VISITOR = web.RequestKey("console_visitor", Session)
FORM = web.RequestKey("console_form", dict)
PREFIX = "/console"
MAX_FORM = 16 * 1024   # bytes of a console form (an answer, a login): far above what one needs

# No script, style, image or font from anywhere but the gateway; no inline script; no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

NAV = (   # (path, label, role needed)
    ("/console/", "Tổng quan", Role.VIEWER),
    ("/console/messages", "Tin nhắn", Role.VIEWER),
    ("/console/questions", "Câu hỏi", Role.VIEWER),
    ("/console/satisfaction", "Hài lòng", Role.VIEWER),
    ("/console/understanding", "Mức độ hiểu", Role.VIEWER),
    ("/console/billing", "Cước", Role.VIEWER),
    ("/console/sending", "Thông báo, lô tin", Role.VIEWER),
    ("/console/carriers", "Nhà mạng", Role.VIEWER),
    ("/console/simulator", "Thử tin nhắn", Role.STAFF),
    ("/console/accounts", "Tài khoản", Role.ADMIN),
    ("/console/audit", "Nhật ký", Role.ADMIN),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(role: Role = Role.VIEWER) -> Callable[[Handler], Handler]:
    """Wrap a console handler: a live session, at least `role`, and on POST the CSRF token."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await session_of(request.app[CONSOLE_STORE], request.cookies.get(SESSION_COOKIE))
            if session is None:
                if request.method == "GET":
                    return redirect(f"{PREFIX}/login?next={quote(request.path_qs, safe='/')}")
                return refusal(request, 403, "Phiên làm việc đã hết hạn hoặc chưa đăng nhập.")
            request[VISITOR] = session
            if not Role(session.role).may(role):
                return refusal(request, 403, "Vai trò của bạn không được làm việc này.")
            if request.method == "POST":
                form = await read_form(request)
                if form is None or not same_token(form.get("csrf"), session.csrf):
                    return refusal(request, 403,
                                   "Thiếu hoặc sai mã chống giả mạo (CSRF). Hãy tải lại trang rồi thử lại.")
                request[FORM] = form
            return await handler(request)

        return checked

    return wrap


async def read_form(request: web.Request) -> dict[str, str] | None:
    """The POSTed form (its last value of each field), or None when it is not one or too big."""
    if request.content_length is not None and request.content_length > MAX_FORM:
        return None
    try:
        data = await request.post()
    except (ValueError, web.HTTPException):
        return None
    return {key: value for key, value in data.items() if isinstance(value, str)}


def form(request: web.Request) -> dict[str, str]:
    return request[FORM]


def visitor(request: web.Request) -> Session:
    return request[VISITOR]


def role_of(request: web.Request) -> Role:
    return Role(visitor(request).role)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST, or to the login page (a response, so its cookies go with it)."""
    return web.Response(status=303, headers={"Location": location})


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    session: Session | None = request.get(VISITOR)
    role = Role(session.role) if session else None
    base = {
        "visitor": session, "role": role.value if role else None,
        "role_label": ROLE_LABELS.get(role.value) if role else "",
        "csrf": session.csrf if session else "", "path": request.path,
        "nav": [(path, label) for path, label, needed in NAV if role is not None and role.may(needed)],
        "can_staff": role is not None and role.may(Role.STAFF), "can_admin": role is not None and role.may(Role.ADMIN),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def refusal(request: web.Request, status: int, reason: str) -> web.Response:
    return render(request, "refused.html", {"reason": reason, "status": status}, status=status)


def address(request: web.Request) -> str:
    return request.remote or "?"


async def audit(request: web.Request, action: str, detail: str, *, actor: str | None = None) -> None:
    """One line of the audit log: who (the session's account, or `actor`), what, when, from where."""
    await request.app[CONSOLE_STORE].audit(at=time.time(), actor=actor or visitor(request).name, action=action,
                                           detail=detail, address=address(request))


def shown_phone(phone: str, *, revealed: bool = False) -> str:
    """A phone number as a page shows it: masked, unless an admin revealed it (audited)."""
    return phone if revealed else mask(phone)


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, *,
               max_age: int | None = None) -> None:
    from ..gateway import CONFIG

    response.set_cookie(name, value, path=f"{PREFIX}/", httponly=True, samesite="Strict", max_age=max_age,
                        secure=request.app[CONFIG].console.https)

