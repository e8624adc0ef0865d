"""Notices and batches (CONTRACT §9): what the gateway sends on its own, and what waits.

- the API's latest batches (store/api.py): key, class, created, total, messages by status, how
  many are still queued and how many of those are held (quiet hours or `send_at`) and until when;
- the notices (notices.py) per kind over the last 7 Vietnam days by outcome (held, queued, sent,
  failed), a day's counts kept once it has settled (daily.py, as the MTs' are), the days not
  settled counted again at most every RECENT_SECONDS (a big notice run is tens of thousands of
  notices a day, each one's MT looked up);
- how many phones are opted out (BH TC): no notice or info message reaches them;
- what the outbox holds: the pending MTs with a `not_before` still to come, per carrier and lane,
  and when the first and last of them are released.

Counts only (store/console_sending.py): no phone number, no text, so a viewer reads it all.
"""

from __future__ import annotations

import time
from weakref import WeakKeyDictionary

from aiohttp import web

from ..notices import CARD_EXPIRY, DOSSIER_RESULT, PAYMENT_REMINDER
from ..store.api import STATUSES
from .daily import day_start
from .overview import chart, day_labels
from .web import CONSOLE_STORE, DAILY, PREFIX, page, render

routes = web.RouteTableDef()
NOTICE_DAYS = 7
NOTICE_KINDS = ((CARD_EXPIRY, "Thẻ BHYT sắp hết hạn"), (PAYMENT_REMINDER, "Nhắc đóng BHXH tự nguyện"),
                (DOSSIER_RESULT, "Kết quả hồ sơ"))
# (outcome, label); the keys are also the chart's colours (console.css `.s-<key>`)
NOTICE_OUTCOMES = (("sent", "đã gửi"), ("pending", "đang chờ gửi"), ("withheld", "giữ tới sáng (giờ yên tĩnh)"),
                   ("failed", "thất bại"))
_CHART_KEY = {"sent": "sent", "queued": "pending", "held": "withheld", "failed": "failed"}
STATUS_LABELS = {"queued": "đang chờ", "sent": "đã gửi", "delivered": "đã nhận", "failed": "thất bại",
                 "expired": "hết hạn", "opted_out": "đã từ chối nhận"}
CLASS_LABELS = {"otp": "mã xác thực (OTP)", "notice": "thông báo", "info": "thông tin"}
LANE_LABELS = {0: "0 · trả lời, OTP", 1: "1 · tin API lẻ", 2: "2 · thông báo, lô"}
# days: a notice held overnight is released the next morning and given up `give_up_after` (a day
# by default) after that: a day's notices have their outcome two days later, as MTs (daily.py)
NOTICES_SETTLE = 2
RECENT_SECONDS = 15.0   # the days not settled yet are counted again at most this often
_recent: WeakKeyDictionary = WeakKeyDictionary()   # store -> {day start: (counted at, rows)}


@routes.get(f"{PREFIX}/sending")
@page()
async def sending(request: web.Request) -> web.Response:
    store, daily, now = request.app[CONSOLE_STORE], request.app[DAILY], time.time()
    batches = [{"batch": batch, "done": sum(n for status, n in batch.counts.items() if status != "queued"),
                "statuses": [(STATUS_LABELS[status], batch.counts.get(status, 0)) for status in STATUSES],
                "class_label": CLASS_LABELS.get(batch.message_class, batch.message_class),
                "waiting": batch.counts.get("queued", 0) > 0}
               for batch in await store.latest_batches(now)]
    today = daily.today()
    first = today - NOTICE_DAYS + 1
    recent = _recent.setdefault(store, {})

    async def counted(since: float, until: float) -> list:
        """A day's notice outcomes; one not settled yet is counted again after RECENT_SECONDS."""
        kept = recent.get(since)
        if kept is None or now - kept[0] >= RECENT_SECONDS:
            kept = recent[since] = (now, await store.notice_outcomes(since, until, now))
        return kept[1]

    by_day = await daily.days("notices", first, today, counted, settles=NOTICES_SETTLE)
    for since in [since for since in recent if since < day_start(today - NOTICES_SETTLE)]:
        del recent[since]
    labels = day_labels(first, NOTICE_DAYS)
    notices = []
    for kind, label in NOTICE_KINDS:
        rows = [(day, _CHART_KEY[outcome], count) for day, day_rows in by_day.items()
                for row_kind, outcome, count in day_rows if row_kind == kind]
        notices.append({"kind": kind, "label": label,
                        "chart": chart(rows, first, NOTICE_DAYS, NOTICE_OUTCOMES, labels,
                                       title=f"{label}: thông báo theo ngày, {NOTICE_DAYS} ngày qua", label_every=1)})
    holds = await store.holds(now)
    return render(request, "sending.html", {
        "title": "Thông báo và lô tin", "batches": batches, "notices": notices, "days": NOTICE_DAYS,
        "opted_out": await store.opted_out(), "holds": holds, "held_total": sum(hold.count for hold in holds),
        "lane_labels": LANE_LABELS, "now": now, "recent_seconds": RECENT_SECONDS})

