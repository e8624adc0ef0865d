"""The overview: MOs and MTs per hour over 24 hours and per day over 30 days by outcome, the share
understood, this month's billing outcomes, and each carrier's queue (depth, oldest pending MT).

Periods are Vietnam time (clock.py). The store counts with one grouped range scan of an index
per chart (console_tables.py), the days that are over kept once counted (daily.py); the console
simulator's test traffic is never counted.
"""

from __future__ import annotations

import time
from datetime import datetime

from aiohttp import web

from ..clock import VIETNAM
from ..logs import mask_text
from ..ledger import MESSAGE_TYPES, month_bounds
from .charts import Series, stacked_bars
from .daily import DAY, OFFSET, billing, day_number, mo_per_day, mt_per_day
from .web import CONSOLE_STORE, DAILY, PREFIX, page, redirect, render

routes = web.RouteTableDef()
HOUR = 3600
MO_OUTCOMES = (("understood", "hiểu được"), ("error", "không hiểu"), ("withheld", "không trả lời"))
MT_OUTCOMES = (("delivered", "đã nhận"), ("sent", "đã gửi"), ("pending", "đang chờ"), ("failed", "thất bại"))
MESSAGE_TYPE_LABELS = {0: "miễn phí", 1: "tính cước", 3: "tin đẩy", 21: "hoàn cước (sai cú pháp)",
                       22: "hoàn cước (không có dữ liệu)"}


def number(value: float) -> str:
    """1234567 -> 1.234.567 (Vietnamese grouping)."""
    return f"{value:,.0f}".replace(",", ".")


def percent(value: float) -> str:
    return f"{100 * value:.1f}%".replace(".", ",")


def local_time(unix: float | None, style: str = "%d/%m/%Y %H:%M") -> str:
    return datetime.fromtimestamp(unix, VIETNAM).strftime(style) if unix else "—"


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} giây"
    if seconds < 3600:
        return f"{seconds // 60} phút"
    if seconds < 86400:
        return f"{seconds // 3600} giờ {seconds % 3600 // 60} phút"
    return f"{seconds // 86400} ngày {seconds % 86400 // 3600} giờ"


FILTERS = {"number": number, "percent": percent, "local_time": local_time, "age": age, "masked": mask_text}


def periods(now: float, bucket: int, count: int) -> tuple[float, float, int]:
    """(since, until, first bucket number) of the last `count` buckets ending with the current one."""
    current = int((now + OFFSET) // bucket)
    first = current - count + 1
    return first * bucket - OFFSET, (current + 1) * bucket - OFFSET, first


def chart(rows: list[tuple[int, str, int]], first: int, count: int, outcomes, labels: list[str], *,
          title: str, label_every: int):
    values = {key: [0] * count for key, _ in outcomes}
    for slot, outcome, n in rows:
        if 0 <= slot - first < count and outcome in values:
            values[outcome][slot - first] += n
    series = [Series(key, label, values[key]) for key, label in outcomes]
    table = [(labels[i], [values[key][i] for key, _ in outcomes]) for i in range(count)]
    return {"svg": stacked_bars(labels, series, title=title, label_every=label_every), "series": series,
            "table": table, "headers": [label for _, label in outcomes],
            "totals": {key: sum(values[key]) for key, _ in outcomes}}


def hour_labels(first: int, count: int) -> list[str]:
    return [f"{(first + i) % 24:02d}h" for i in range(count)]


def day_labels(first: int, count: int) -> list[str]:
    return [datetime.fromtimestamp((first + i) * DAY, VIETNAM).strftime("%d/%m") for i in range(count)]


def current_month(now: float) -> str:
    return datetime.fromtimestamp(now, VIETNAM).strftime("%Y-%m")


@routes.get(PREFIX)
async def console_root(request: web.Request) -> web.Response:
    return redirect(f"{PREFIX}/")


@routes.get(f"{PREFIX}/")
@page()
async def overview(request: web.Request) -> web.Response:
    store, daily = request.app[CONSOLE_STORE], request.app[DAILY]
    now = time.time()
    h_since, h_until, h_first = periods(now, HOUR, 24)
    hours = hour_labels(h_first, 24)
    mo_hours = chart(await store.mo_buckets(h_since, h_until, HOUR, OFFSET), h_first, 24, MO_OUTCOMES, hours,
                     title="Tin đến (MO) theo giờ, 24 giờ qua", label_every=3)
    mt_hours = chart(await store.mt_buckets(h_since, h_until, HOUR, OFFSET), h_first, 24, MT_OUTCOMES, hours,
                     title="Tin trả lời (MT) theo giờ, 24 giờ qua", label_every=3)
    today = daily.today()
    d_first = today - 29
    days = day_labels(d_first, 30)
    mo_days = chart(await mo_per_day(store, daily, d_first, today), d_first, 30, MO_OUTCOMES, days,
                    title="Tin đến (MO) theo ngày, 30 ngày qua", label_every=5)
    mt_days = chart(await mt_per_day(store, daily, d_first, today), d_first, 30, MT_OUTCOMES, days,
                    title="Tin trả lời (MT) theo ngày, 30 ngày qua", label_every=5)
    judged = mo_days["totals"]["understood"] + mo_days["totals"]["error"]
    month = current_month(now)
    start, end = month_bounds(month)
    per_type: dict[int, list[int]] = {}
    for _carrier, message_type, kind, rows, amount in await billing(store, daily, day_number(start),
                                                                     day_number(end - 1)):
        entry = per_type.setdefault(message_type, [0, 0])
        entry[0] += rows if kind != "refund" else 0
        entry[1] += amount
    queues = [(queue, now - queue.oldest if queue.oldest else 0) for queue in await store.queues()]
    return render(request, "overview.html", {
        "title": "Tổng quan", "mo_hours": mo_hours, "mt_hours": mt_hours, "mo_days": mo_days, "mt_days": mt_days,
        "share": mo_days["totals"]["understood"] / judged if judged else None, "judged": judged, "month": month,
        "billing": [(MESSAGE_TYPE_LABELS.get(t, MESSAGE_TYPES.get(t, str(t))), t, *per_type[t]) for t in sorted(per_type)],
        "queues": queues,
    })
