"""The simulator: staff type a message as a phone and see exactly what a carrier would get back.

The message takes the real path: `Intake.take` (protection, the service: language, lookups,
replies; the MO, its reply and charge row stored in one transaction), in sync mode, so nothing
goes to the outbox. It is stored as test traffic: its carrier is `store.TEST_CARRIER`, a name no
configured carrier can have, and every count, report, billing total and ledger export leaves that
carrier out, so it is never billed nor counted; the message and its reply show, marked "thử", in
the phone's conversation. The chosen carrier's adapter renders the reply as that carrier would
receive it (`render_sync`: its status, content type and body), beside the reply's text,
encoding, parts and billing outcome. Each use is written to the audit log.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from aiohttp import web

from ..gateway import ADAPTERS, CONFIG, INTAKE
from ..gsm import GSM7_BASIC, GSM7_EXTENSION
from ..ids import new_id
from ..phones import InvalidPhone, mask, normalize
from ..store import TEST_CARRIER
from ..wire import InboundMessage
from .auth import Role
from .web import PREFIX, audit, form, page, render

routes = web.RouteTableDef()
MAX_TEXT = 1600


def alphabets() -> dict[str, str]:
    """gsm.py's alphabets as the page's script reads them (console.js counts characters and parts)."""
    return {"gsm7_basic": json.dumps(GSM7_BASIC), "gsm7_extension": json.dumps(GSM7_EXTENSION)}


def _context(request: web.Request, **values) -> dict:
    carriers = list(request.app[ADAPTERS])
    base = {"title": "Thử tin nhắn", "carriers": carriers, "carrier": carriers[0] if carriers else "",
            "phone": "", "text": "", "error": "", "result": None, **alphabets()}
    return {**base, **values}


@routes.get(f"{PREFIX}/simulator")
@page(Role.STAFF)
async def simulator_form(request: web.Request) -> web.Response:
    return render(request, "simulator.html", _context(request))


@routes.post(f"{PREFIX}/simulator")
@page(Role.STAFF)
async def simulate(request: web.Request) -> web.Response:
    data = form(request)
    carrier, raw_phone = data.get("carrier", ""), data.get("phone", "").strip()
    text = data.get("text", "").replace("\r\n", "\n")
    adapter = request.app[ADAPTERS].get(carrier)
    problem = None
    if adapter is None:
        problem = "Hãy chọn một nhà mạng đã cấu hình."
    elif len(text) > MAX_TEXT:
        problem = f"Tin nhắn dài quá {MAX_TEXT} ký tự."
    try:
        phone = normalize(raw_phone)
    except InvalidPhone:
        phone, problem = "", problem or "Số điện thoại không hợp lệ: ví dụ 0912345678 hoặc 84912345678."
    if problem is not None:
        return render(request, "simulator.html", _context(request, carrier=carrier, text=text, error=problem),
                      status=400)
    inbound = InboundMessage(carrier=TEST_CARRIER, carrier_id=f"sim-{new_id()}", sender=phone,
                             to=request.app[CONFIG].shortcode, text=text, received_at=datetime.now(timezone.utc))
    stored = await request.app[INTAKE].take(inbound, mode="sync")
    response = adapter.render_sync(stored.mo_id, stored.replies)
    await audit(request, "simulate", f"thử tin từ {mask(phone)} qua {carrier} (MO {stored.mo_id})")
    result = {"mo_id": stored.mo_id, "command": stored.command, "error": stored.error, "guard": stored.guard,
              "replies": stored.replies, "status": response.status, "content_type": response.content_type,
              "body": response.body.decode(response.charset or "utf-8", errors="replace")}
    return render(request, "simulator.html", _context(request, carrier=carrier, text=text, result=result))
