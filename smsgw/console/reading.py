"""Understanding, billing and carriers: the operators' reading pages.

- understanding: the share understood and errors by kind today, over 7 or 30 days (whole Vietnam
  days; reports.py's counting, daily.py's kept days), and the shapes (reports.shape: digits as
  9) of the latest 2,000 MOs not understood, and the corrections taken up over the whole days
  of the window (corrections.py).
- billing: a month per carrier and billing outcome; its CSV (ledger.py's export) for admins,
  written to the audit log.
- carriers: per configured carrier its mode and `tps`, the rate this gateway sends at now, the
  queue, the outcomes of the last 24 hours and the last errors.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter

from aiohttp import web

from ..gateway import ADAPTERS, CONFIG, OUTBOX
from ..ledger import export_csv, month_bounds
from ..reports import Understanding, count_outcomes, shape
from ..store import open_reports
from .auth import Role
from .corrections import corrections as corrections_of
from .daily import DAY, day_number, day_start, outcomes
from .daily import billing as billing_of_days
from .overview import MESSAGE_TYPE_LABELS, MT_OUTCOMES, current_month
from .web import CONSOLE_DB, CONSOLE_STORE, DAILY, PREFIX, audit, form, page, refusal, render, role_of

routes = web.RouteTableDef()
WINDOWS = {"1": "hôm nay", "7": "7 ngày", "30": "30 ngày"}   # whole Vietnam days, today included
SHAPE_SAMPLE = 2000
TOP_SHAPES = 20
KIND_LABELS = {"charge": "tính cước", "refund": "hoàn cước", "push": "tin đẩy"}
SLOW_QUEUE = 300.0     # seconds: an older pending MT marks a carrier slow
FAILING_SHARE = 0.05   # a larger share of failed MTs over 24 hours marks a carrier failing


@routes.get(f"{PREFIX}/understanding")
@page()
async def understanding(request: web.Request) -> web.Response:
    days = request.query.get("days", "30")
    if days not in WINDOWS:
        return refusal(request, 400, "days phải là 1, 7 hoặc 30.")
    store, daily = request.app[CONSOLE_STORE], request.app[DAILY]
    today = daily.today()
    first = today - int(days) + 1
    report = count_outcomes(Understanding(), await outcomes(store, daily, first, today))
    shapes: Counter = Counter()
    if role_of(request).may(Role.STAFF):   # a shape keeps the words: they may hold a name
        shapes.update(shape(text) for text in await store.misunderstood_texts(day_start(first), SHAPE_SAMPLE))
    errors = sorted(report.errors.items(), key=lambda item: (-item[1], item[0]))
    taken = await corrections_of(store, daily, first, today, routes=frozenset(request.app[CONFIG].routes))
    return render(request, "understanding.html", {
        "title": "Mức độ hiểu tin nhắn", "windows": WINDOWS, "days": days, "report": report, "errors": errors,
        "shapes": sorted(shapes.items(), key=lambda item: (-item[1], item[0]))[:TOP_SHAPES],
        "sample": sum(shapes.values()), "shapes_shown": role_of(request).may(Role.STAFF), "corrections": taken})


def _month(request: web.Request, given: str | None) -> tuple[str, tuple[float, float]] | None:
    month = given or current_month(time.time())
    try:
        return month, month_bounds(month)
    except ValueError:
        return None


@routes.get(f"{PREFIX}/billing")
@page()
async def billing(request: web.Request) -> web.Response:
    chosen = _month(request, request.query.get("month"))
    if chosen is None:
        return refusal(request, 400, "Tháng phải có dạng YYYY-MM, ví dụ 2026-11.")
    month, (start, end) = chosen
    rows = await billing_of_days(request.app[CONSOLE_STORE], request.app[DAILY], day_number(start),
                                 day_number(end - 1))
    lines = [{"carrier": carrier, "type": MESSAGE_TYPE_LABELS.get(message_type, str(message_type)),
              "message_type": message_type, "kind": KIND_LABELS.get(kind, kind), "rows": count, "amount": amount}
             for carrier, message_type, kind, count, amount in rows]
    per_carrier: dict[str, int] = {}
    for line in lines:
        per_carrier[line["carrier"]] = per_carrier.get(line["carrier"], 0) + line["amount"]
    return render(request, "billing.html", {"title": "Cước theo tháng", "month": month, "lines": lines,
                                            "per_carrier": sorted(per_carrier.items()),
                                            "total": sum(per_carrier.values())})


@routes.post(f"{PREFIX}/billing/export")
@page(Role.ADMIN)
async def export(request: web.Request) -> web.StreamResponse:
    chosen = _month(request, form(request).get("month"))
    if chosen is None:
        return refusal(request, 400, "Tháng phải có dạng YYYY-MM, ví dụ 2026-11.")
    month = chosen[0]
    db_path = request.app[CONSOLE_DB]
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8", newline="")

    def write() -> int:   # ledger.py's export, on a reading connection of its own, off the event loop
        reader = open_reports(db_path)
        try:
            return export_csv(reader, month, spool)
        finally:
            reader.close()

    count = await asyncio.get_running_loop().run_in_executor(None, write)
    await audit(request, "export", f"xuất bảng cước tháng {month} ({count} dòng)")
    spool.seek(0)
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
                                           "Content-Disposition": f'attachment; filename="billing-{month}.csv"'})
    await response.prepare(request)
    while chunk := spool.read(64 * 1024):
        await response.write(chunk.encode())
    spool.close()
    await response.write_eof()
    return response


@routes.get(f"{PREFIX}/carriers")
@page()
async def carriers(request: web.Request) -> web.Response:
    app, store, now = request.app, request.app[CONSOLE_STORE], time.time()
    queues = {queue.carrier: queue for queue in await store.queues()}
    outcomes: dict[str, Counter] = {}
    for carrier, outcome, count in await store.mt_outcomes_by_carrier(now - DAY):
        outcomes.setdefault(carrier, Counter())[outcome] += count
    errors: dict[str, list] = {}
    for at, carrier, mt_id, attempts, error in await store.last_errors(now - DAY, 50):
        errors.setdefault(carrier, [])
        if len(errors[carrier]) < 5:
            errors[carrier].append({"at": at, "mt_id": mt_id, "attempts": attempts, "error": error})
    outbox = app[OUTBOX]
    cards = []
    for name, adapter in app[ADAPTERS].items():
        settings = adapter.config
        queue = queues.get(name)
        counts = outcomes.get(name, Counter())
        total = sum(counts.values())
        waited = now - queue.oldest if queue is not None and queue.oldest else 0.0
        failing = total and counts["failed"] / total >= FAILING_SHARE
        health = ("bad", "Lỗi nhiều") if failing else ("warn", "Chậm") if waited > SLOW_QUEUE else ("good", "Tốt")
        throttle = outbox.throttles.get(name)
        cards.append({"name": name, "adapter": type(adapter).__name__, "mode": settings.mode, "tps": settings.tps,
                      "rate": throttle.measured if throttle is not None else 0.0, "health": health,
                      "depth": queue.depth if queue else 0, "waited": waited, "total": total,
                      "outcomes": [(label, counts[key]) for key, label in MT_OUTCOMES], "errors": errors.get(name, [])})
    return render(request, "carriers.html", {"title": "Nhà mạng", "cards": cards,
                                             "configured": app[CONFIG].carriers.keys()})

