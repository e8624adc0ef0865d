"""Questions and satisfaction (CONTRACT §7, §9): the citizens' BH HOI questions and BH DG ratings.

- questions: the open ones, oldest first, with their age in working hours (`[questions]`: the
  agency's days, hours and holidays) beside their age on the clock; the FAQ's closest entries
  when the gateway has an FAQ; an answer form for staff, with a live count of what will be sent:
  the worded answer (cli_questions.answer_message: "Trả lời câu hỏi Q12: ...", folded to GSM-7
  unless `unicode`, the rating invitation when it fits), in characters, encoding and SMS parts,
  exactly as gsm.py counts it (console.js); and who answered what, latest first. The answer goes
  through `MessageStore.answer_question` (once: a second answer is refused naming who answered
  and when) and the gateway's own outbox, to the carrier the question came by; audited. An answer
  that keeps the text of the FAQ suggestion staff started from ("Dùng câu này") labels the question
  as an example of that entry, in the answer's transaction, as `smsgw questions answer --faq` does:
  the gateways match such a question at once within a minute (faq_store.keep_faq_fresh). Staff may
  instead close a question without sending anything (it needs no answer, was answered by
  telephone, or its asker's number was erased): the same call, no SMS; audited.
- satisfaction: a month's ratings, the mean and the index (share of 4 and 5) against the agency's
  targets (satisfaction.TARGETS), what was rated, and the comments (staff and admins only: a
  comment may name a person).
Viewers see numbers masked and no question, answer or comment text.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta

from aiohttp import web

from ..answers import QuestionReply
from ..cli_questions import ANSWER_LEASE, MAX_ANSWER, answer_message
from ..clock import VIETNAM
from ..conversation_replies import question_reply
from ..gateway import ADAPTERS, CONFIG, INTAKE, OUTBOX, STORE
from ..ledger import month_bounds
from ..phones import mask
from ..satisfaction import SATISFIED, SERVICE, TARGETS
from ..store import PendingMT, erased_phone
from ..working_hours import QuestionsConfig
from .auth import Role
from .overview import current_month
from .simulator import alphabets
from .web import CONSOLE_STORE, PREFIX, audit, form, page, redirect, refusal, render, role_of, visitor

routes = web.RouteTableDef()
HIDDEN = "(ẩn với vai trò Xem)"
SUGGESTIONS = 3
MAX_DAYS = 400   # days walked to count working hours (an older question is old enough)


def working_seconds(hours: QuestionsConfig, start: float, end: float) -> float:
    """Seconds of working hours (Vietnam time) between `start` and `end`."""
    total = 0.0
    day = datetime.fromtimestamp(start, VIETNAM).date()
    last = datetime.fromtimestamp(end, VIETNAM).date()
    for _ in range(MAX_DAYS):
        if day > last:
            break
        if hours.working_day(day):
            opening = datetime.combine(day, hours.opening, VIETNAM).timestamp()
            closing = datetime.combine(day, hours.closing, VIETNAM).timestamp()
            total += max(0.0, min(closing, end) - max(opening, start))
        day += timedelta(days=1)
    return total


def counting(number: str, unicode: bool) -> dict[str, str]:
    """What console.js needs to count the SMS an answer becomes: the worded text around it."""
    prefix = question_reply(QuestionReply(number, ""), unicode)
    invited = question_reply(QuestionReply(number, "x", invite=True), unicode)
    return {"prefix": json.dumps(prefix), "suffix": json.dumps(invited[len(prefix) + 1:]),
            "fold": "0" if unicode else "1", **alphabets()}


def _faq(request: web.Request):
    """The FAQ the gateway's service matches with (faq.Faq), or None."""
    return getattr(getattr(getattr(request.app[INTAKE], "service", None), "conversations", None), "faq", None)


def _suggestions(request: web.Request, text: str) -> list[tuple[str, str]]:
    faq = _faq(request)
    if faq is None:
        return []
    return [(entry.id, entry.answer) for entry, _score in faq.suggest(text, SUGGESTIONS)]


def _example_of(request: web.Request, entry_id: str, text: str) -> str | None:
    """`entry_id` when the answer `text` still holds that entry's answer (staff may add to it):
    the question is then labelled with the entry; None when it was rewritten or is no entry."""
    faq = _faq(request)
    entry = next((entry for entry in faq.entries if entry.id == entry_id), None) if faq is not None else None
    if entry is None or " ".join(entry.answer.split()) not in text:
        return None
    return entry.id


async def _page(request: web.Request, *, error: str = "", status: int = 200, done: str = "",
                closed: str = "", labelled: str = "") -> web.Response:
    store, config, now = request.app[CONSOLE_STORE], request.app[CONFIG], time.time()
    staff = role_of(request).may(Role.STAFF)
    open_questions = [{
        "number": q.number, "phone": mask(q.sender), "carrier": q.carrier, "asked_at": q.asked_at,
        "text": q.text if staff else HIDDEN, "waited": now - q.asked_at,
        "working": working_seconds(config.questions, q.asked_at, now),
        "suggestions": _suggestions(request, q.text) if staff else [],
        "counting": counting(q.number, config.unicode),
    } for q in await store.open_questions()]
    answered = [{"number": q.number, "phone": mask(q.sender), "by": q.answered_by, "at": q.answered_at,
                 "text": q.text if staff else HIDDEN, "closed": q.answer is None,
                 "answer": q.answer if staff else HIDDEN}
                for q in await store.answered_questions()]
    return render(request, "questions.html", {"title": "Câu hỏi của người dân", "open": open_questions,
                                              "answered": answered, "error": error, "done": done,
                                              "closed": closed, "labelled": labelled,
                                              "max_answer": MAX_ANSWER}, status=status)


@routes.get(f"{PREFIX}/questions")
@page()
async def questions(request: web.Request) -> web.Response:
    query = request.query
    return await _page(request, done=query.get("done", "")[:24], closed=query.get("closed", "")[:24],
                       labelled=query.get("example", "")[:64])


@routes.post(PREFIX + "/questions/{number}/answer")
@page(Role.STAFF)
async def answer(request: web.Request) -> web.Response:
    number = request.match_info["number"].upper()
    text = " ".join(form(request).get("text", "").split())
    if not text:
        return await _page(request, error=f"{number}: câu trả lời đang trống.", status=400)
    if len(text) > MAX_ANSWER:
        return await _page(request, error=f"{number}: câu trả lời dài {len(text)} ký tự, tối đa {MAX_ANSWER}.",
                           status=400)
    app, name, config = request.app, visitor(request).name, request.app[CONFIG]
    asked = await app[CONSOLE_STORE].question(number)
    if asked is None:
        return await _page(request, error=f"Không có câu hỏi {number}.", status=404)
    if erased_phone(asked.sender):
        return await _page(request, status=409, error=f"{number}: số điện thoại của người hỏi đã bị xoá theo thời hạn "
                                                      "lưu trữ: không gửi được câu trả lời.")
    if asked.carrier not in app[ADAPTERS]:
        return await _page(request, status=409, error=f"{number} đến qua nhà mạng {asked.carrier}, không có trong cấu "
                                                      "hình của cổng này: không gửi được câu trả lời.")
    store = app[STORE]
    example_of = _example_of(request, form(request).get("faq", ""), text)
    stored = await store.answer_question(number, lambda question: answer_message(question, text, config), by=name,
                                         now=time.time(), lease=store.lease_seconds or ANSWER_LEASE,
                                         example_of=example_of)
    if stored is None:
        return await _page(request, error=f"Không có câu hỏi {number}.", status=404)
    if stored.no_entry:   # an import removed the entry since the gateway started
        return await _page(request, status=409, error=f"{number}: mục {example_of} không còn trong bộ câu hỏi "
                                                      "thường gặp; hãy viết câu trả lời.")
    if stored.refused:
        return await _page(request, status=409, error=_already(stored.question))
    now = time.time()
    app[OUTBOX].add(PendingMT(stored.mt, 0, now, now))   # this gateway sends it, through its carrier
    labelled = f", ví dụ cho mục {example_of}" if example_of else ""
    await audit(request, "answer", f"trả lời {number} ({stored.mt.segments} tin SMS qua {stored.mt.carrier}){labelled}")
    return redirect(f"{PREFIX}/questions?done={number}" + (f"&example={example_of}" if example_of else ""))


def _already(question) -> str:
    when = datetime.fromtimestamp(question.answered_at or 0, VIETNAM).strftime("%H:%M %d/%m/%Y")
    done = "đóng" if question.answer is None else "trả lời"
    return f"{question.number} đã được {question.answered_by} {done} lúc {when}."


@routes.post(PREFIX + "/questions/{number}/close")
@page(Role.STAFF)
async def close(request: web.Request) -> web.Response:
    number = request.match_info["number"].upper()
    stored = await request.app[STORE].answer_question(number, lambda question: None, by=visitor(request).name,
                                                      now=time.time(), lease=0.0)
    if stored is None:
        return await _page(request, error=f"Không có câu hỏi {number}.", status=404)
    if stored.refused:
        return await _page(request, status=409, error=_already(stored.question))
    await audit(request, "close", f"đóng {number}, không gửi tin")
    return redirect(f"{PREFIX}/questions?closed={number}")


@routes.get(f"{PREFIX}/satisfaction")
@page()
async def satisfaction(request: web.Request) -> web.Response:
    month = request.query.get("month") or current_month(time.time())
    try:
        start, end = month_bounds(month)
    except ValueError:
        return refusal(request, 400, "Tháng phải có dạng YYYY-MM, ví dụ 2026-11.")
    store = request.app[CONSOLE_STORE]
    ratings: Counter = Counter()
    rated: Counter = Counter()
    for rating, command, count in await store.rating_counts(start, end):
        ratings[rating] += count
        rated[command or SERVICE] += count
    total = sum(ratings.values())
    index = sum(ratings[r] for r in SATISFIED) / total if total else None
    staff = role_of(request).may(Role.STAFF)
    comments = [{"at": at, "phone": mask(phone), "rating": rating, "rated": command or SERVICE,
                 "comment": comment if staff else HIDDEN}
                for at, phone, rating, command, comment in await store.rating_comments(start, end)]
    return render(request, "satisfaction.html", {
        "title": "Mức độ hài lòng", "month": month, "total": total, "index": index,
        "mean": sum(r * n for r, n in ratings.items()) / total if total else None,
        "ratings": [(r, ratings[r]) for r in range(5, 0, -1)], "rated": rated.most_common(),
        "targets": [(year, share, index is not None and index >= share) for year, share in TARGETS],
        "comments": comments})
