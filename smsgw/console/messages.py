"""Messages: search by MO id, the carrier's id or a full phone number; one citizen's conversation
(MOs, replies, notices, delivery states) in order; a number revealed to an admin, audited.

Phone numbers never go into a URL (browser history, proxies' logs): a search is a POST, and a
conversation is addressed by one of its MO ids. Numbers are masked on every page unless an admin
reveals them; message texts (which may hold names and BHXH numbers) are shown to staff and
admins only.
"""

from __future__ import annotations

from aiohttp import web

from ..phones import InvalidPhone, mask, normalize
from ..store import TEST_CARRIER, MessageRow
from .auth import Role
from .web import CONSOLE_STORE, PREFIX, audit, form, page, render, role_of, shown_phone

routes = web.RouteTableDef()
HIDDEN_TEXT = "(nội dung ẩn với vai trò Xem)"
SEARCH_KINDS = {"mo_id": "Mã MO", "carrier_id": "Mã của nhà mạng", "phone": "Số điện thoại (đủ số)"}


def shown_rows(rows: list[MessageRow], role: Role, *, revealed: bool = False) -> list[dict]:
    """The rows as a page shows them: numbers masked (unless revealed), texts only to staff and admins."""
    return [{"kind": row.kind, "id": row.id, "at": row.at, "carrier": row.carrier, "mo_id": row.mo_id,
             "test": row.carrier == TEST_CARRIER, "phone": shown_phone(row.phone, revealed=revealed),
             "text": row.text if role.may(Role.STAFF) else HIDDEN_TEXT, "status": row.status,
             "detail": row.detail} for row in rows]


@routes.get(f"{PREFIX}/messages")
@page()
async def search_form(request: web.Request) -> web.Response:
    return render(request, "messages.html", {"title": "Tin nhắn", "kinds": SEARCH_KINDS, "kind": "phone",
                                             "query": "", "results": None, "error": ""})


@routes.post(f"{PREFIX}/messages")
@page()
async def search(request: web.Request) -> web.Response:
    data = form(request)
    kind, query = data.get("kind", ""), data.get("q", "").strip()
    store = request.app[CONSOLE_STORE]
    context = {"title": "Tin nhắn", "kinds": SEARCH_KINDS, "kind": kind, "query": "", "results": None, "error": ""}
    if kind not in SEARCH_KINDS or not query or len(query) > 128:
        context["error"] = "Hãy chọn cách tìm và nhập mã hoặc số điện thoại (tối đa 128 ký tự)."
        return render(request, "messages.html", context, status=400)
    if kind == "phone":
        try:
            phone = normalize(query)
        except InvalidPhone:
            context["error"] = "Số điện thoại không hợp lệ: hãy nhập đủ số, ví dụ 0912345678 hoặc 84912345678."
            return render(request, "messages.html", context, status=400)
        rows = await store.conversation(phone)
        return render(request, "conversation.html", _conversation(request, phone, rows, revealed=False))
    context["query"] = query   # an id, never a phone number
    found = await store.find_mos(mo_id=query) if kind == "mo_id" else await store.find_mos(carrier_id=query)
    context["results"] = shown_rows(found, role_of(request))
    return render(request, "messages.html", context)


@routes.get(PREFIX + "/messages/mo/{mo_id}")
@page()
async def conversation(request: web.Request) -> web.Response:
    return await _conversation_of(request, revealed=False)


@routes.post(PREFIX + "/messages/mo/{mo_id}/reveal")
@page(Role.ADMIN)
async def reveal(request: web.Request) -> web.Response:
    return await _conversation_of(request, revealed=True)


async def _conversation_of(request: web.Request, *, revealed: bool) -> web.Response:
    mo_id = request.match_info["mo_id"]
    store = request.app[CONSOLE_STORE]
    found = await store.find_mos(mo_id=mo_id)
    if not found:
        return render(request, "messages.html", {"title": "Tin nhắn", "kinds": SEARCH_KINDS, "kind": "mo_id",
                                                 "query": mo_id[:64], "results": [], "error": ""}, status=404)
    phone = found[0].phone
    if revealed:
        await audit(request, "reveal", f"hiện số {mask(phone)} (hội thoại của MO {mo_id})")
    rows = await store.conversation(phone)
    return render(request, "conversation.html", _conversation(request, phone, rows, revealed=revealed, mo_id=mo_id))


def _conversation(request: web.Request, phone: str, rows: list[MessageRow], *, revealed: bool,
                  mo_id: str | None = None) -> dict:
    anchor = mo_id or next((row.mo_id for row in rows if row.kind == "mo"), None)
    return {"title": "Hội thoại", "phone": shown_phone(phone, revealed=revealed), "revealed": revealed,
            "rows": shown_rows(rows, role_of(request), revealed=revealed), "anchor": anchor}
