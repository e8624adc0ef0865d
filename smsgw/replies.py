"""Every text the gateway sends to a citizen, and the one place where it is worded.

`reply(answer)` is the step of the message path after dispatch: an Answer (answers.py) in, a
`Reply` out: its text, its encoding and SMS parts (gsm.py), and the billing outcome it carries.
The answers to lookups, refusals and the notices are worded here; what a message that was not
understood gets (help, syntax, a correction quoted) is worded in syntax_replies.py.

Each template is written once, in Vietnamese with diacritics. The default reply is that template
folded (`gsm.fold`) to plain GSM-7 text; with `unicode=True` the diacritics stay and the reply
goes as UCS-2 (wording.py). Every folded template of this module is checked to be GSM-7 when it
is imported, the rate-limit reply to fit one SMS, and no reply ever takes more than
MAX_SEGMENTS parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from . import conversation_replies, gsm, syntax_replies
from .answers import (
    Answer, BusyAnswer, CardAnswer, DossierAnswer, HelpAnswer, NotFoundAnswer, NotOwnerAnswer, OptOutAnswer, QTAnswer,
    QuestionAnswer, QuestionReply, RateLimitedAnswer, RatingAnswer, RoutedAnswer, SyntaxAnswer, Totals,
)
from .billing import MessageType
from .syntax_replies import help_text, syntax_reply
from .wording import check_gsm7, check_one_sms, day, month, value, word

MAX_SEGMENTS = 3

_QT_WHOLE = "Mã số {ssn}, toàn bộ quá trình: {asked}."
_QT_PERIOD = "Mã số {ssn}, giai đoạn {period}: {asked}. Tổng: {whole}."
_QT_UNTIL = "đến {end}"          # the period of `den 2016`: the whole history up to its end
_QT_SINCE = "{start} đến nay"    # the period of `tu 2016`, `2016 den nay`: up to the current month
_QT_TOTALS = (
    "BHXH: {bhxh_years:02d} năm {bhxh_months:02d} tháng, BHTN: {bhtn_years:02d} năm {bhtn_months:02d} tháng"
)
_CARD_VALID = "Thẻ BHYT {card_no} có giá trị đến {valid_to}."
_CARD_EXPIRED = "Thẻ BHYT {card_no} đã hết hạn, có giá trị đến {valid_to}. Vui lòng gia hạn thẻ."
_DOSSIER = "Hồ sơ {code}: {status} (cập nhật {updated_at})."
_DOSSIER_STATUS = {
    "received": "đã tiếp nhận",
    "processing": "đang xử lý",
    "needs_more": "cần bổ sung",
    "approved": "đã duyệt",
    "rejected": "từ chối",
    "returned": "đã trả kết quả",
}
_NOT_FOUND = {
    "QT": "Không tìm thấy mã số {id}. Kiểm tra lại mã số BHXH (10 số) hoặc CCCD (12 số).",
    "THE": "Không tìm thấy thẻ BHYT theo mã {id}. Kiểm tra lại mã thẻ hoặc mã số BHXH.",
    "HS": "Không tìm thấy hồ sơ {id}. Kiểm tra lại mã hồ sơ.",
}
# Under owner_only the same words answer an unknown record, a record without a phone and another
# person's record: a reply that differed would tell a stranger which numbers exist.
_NOT_OWNER = (
    "Không tìm thấy hoặc số điện thoại không khớp. {topic} chỉ gửi tới số đã đăng ký của người tham gia. "
    "Kiểm tra lại mã số hoặc liên hệ cơ quan BHXH."
)
_NOT_OWNER_TOPIC = {"QT": "Quá trình đóng BHXH", "THE": "Thông tin thẻ BHYT", "HS": "Thông tin hồ sơ"}
_BUSY = "Dịch vụ {keyword} đang bận, vui lòng gửi lại sau ít phút. Tin nhắn này không bị tính phí."
_RATE_LIMITED = (
    "Bạn đã gửi quá {limit} tin nhắn tra cứu trong 1 giờ. Vui lòng gửi lại sau. "
    "Tin nhắn này không bị tính phí."
)
# Notices (pushes from the brandname, message_type 3), worded after the agency's own templates.
_CARD_EXPIRY = (
    "Thẻ BHYT {card_no} của ông/bà {name} sẽ hết hạn vào ngày {valid_to}. "
    "Vui lòng liên hệ {agent} để gia hạn thẻ. Trân trọng."
)
_PAYMENT_REMINDER = (
    "Ông/bà {name} (mã số BHXH {ssn}) đã đóng BHXH tự nguyện đến hết ngày {paid_until}, "
    "tổng thời gian: {years:02d} năm {months:02d} tháng. "
    "Để tiếp tục tham gia đề nghị đóng trước ngày {paid_until}."
)

_TEMPLATES = (
    _QT_WHOLE, _QT_PERIOD, _QT_UNTIL, _QT_SINCE, _QT_TOTALS, _CARD_VALID, _CARD_EXPIRED, _DOSSIER,
    *_DOSSIER_STATUS.values(), *_NOT_FOUND.values(), _NOT_OWNER, *_NOT_OWNER_TOPIC.values(), _BUSY,
    _RATE_LIMITED, _CARD_EXPIRY, _PAYMENT_REMINDER,
)
TEMPLATES = (*syntax_replies.TEMPLATES, *_TEMPLATES, *conversation_replies.TEMPLATES)
"""Every template the gateway words (this module's and syntax_replies'), with diacritics; their
folded forms are the default replies."""


def _within_limit(text: str) -> str:
    """`text`, or its longest prefix of whole words (ending `...`) that fits MAX_SEGMENTS parts."""
    if gsm.measure(text).segments <= MAX_SEGMENTS:
        return text
    # No text longer than this many characters fits: each takes at least one unit.
    longest = MAX_SEGMENTS * gsm.GSM7_PART
    words = text[: longest + 1].split(" ")
    if len(text) > longest:
        words.pop()
    while words and gsm.measure(" ".join(words) + " ...").segments > MAX_SEGMENTS:
        words.pop()
    return " ".join(words + ["..."])


def _totals(totals: Totals, unicode: bool) -> str:
    bhxh_years, bhxh_months = divmod(totals.bhxh_months, 12)
    bhtn_years, bhtn_months = divmod(totals.bhtn_months, 12)
    return word(_QT_TOTALS, unicode).format(
        bhxh_years=bhxh_years, bhxh_months=bhxh_months, bhtn_years=bhtn_years, bhtn_months=bhtn_months,
    )


def _qt(answer: QTAnswer, unicode: bool) -> str:
    ssn = value(answer.ssn, unicode)
    asked = _totals(answer.asked, unicode)
    if answer.end is None or answer.whole is None:
        return word(_QT_WHOLE, unicode).format(ssn=ssn, asked=asked)
    if answer.start is None:
        period = word(_QT_UNTIL, unicode).format(end=month(answer.end))
    elif answer.until_now:
        period = word(_QT_SINCE, unicode).format(start=month(answer.start))
    else:
        period = month(answer.start)
        if answer.end != answer.start:
            period += "-" + month(answer.end)
    whole = _totals(answer.whole, unicode)
    return word(_QT_PERIOD, unicode).format(ssn=ssn, period=period, asked=asked, whole=whole)


def _card(answer: CardAnswer, unicode: bool) -> str:
    template = _CARD_EXPIRED if answer.expired else _CARD_VALID
    return word(template, unicode).format(
        card_no=value(answer.card_no, unicode), valid_to=day(answer.valid_to),
    )


def _dossier(answer: DossierAnswer, unicode: bool) -> str:
    if answer.status not in _DOSSIER_STATUS:
        raise ValueError(f"unknown dossier status {answer.status!r}")
    return word(_DOSSIER, unicode).format(
        code=value(answer.code, unicode),
        status=word(_DOSSIER_STATUS[answer.status], unicode),
        updated_at=day(answer.updated_at),
    )


def _text(answer: Answer, unicode: bool) -> str:
    match answer:
        case HelpAnswer():
            return help_text(unicode=unicode)
        case SyntaxAnswer(error=error, command=command, correction=correction, detail=detail):
            return syntax_reply(error, command, unicode=unicode, correction=correction, detail=detail)
        case NotFoundAnswer(command=command, id=ident):
            return word(_NOT_FOUND[command], unicode).format(id=value(ident, unicode))
        case NotOwnerAnswer(command=command):
            topic = word(_NOT_OWNER_TOPIC[command], unicode)
            return word(_NOT_OWNER, unicode).format(topic=topic)
        case QTAnswer():
            return _qt(answer, unicode)
        case CardAnswer():
            return _card(answer, unicode)
        case DossierAnswer():
            return _dossier(answer, unicode)
        case RoutedAnswer(text=text):
            return value(text, unicode)
        case BusyAnswer(keyword=keyword):
            return word(_BUSY, unicode).format(keyword=value(keyword, unicode))
        case RateLimitedAnswer(limit=limit):
            return word(_RATE_LIMITED, unicode).format(limit=limit)
        case QuestionAnswer() | QuestionReply() | RatingAnswer() | OptOutAnswer():
            return conversation_replies.text_of(answer, unicode)
    raise TypeError(f"not an Answer: {answer!r}")


def render(answer: Answer, *, unicode: bool = False) -> str:
    """The reply text for `answer`: folded GSM-7 by default, with diacritics when `unicode`.

    The text never takes more than MAX_SEGMENTS SMS parts; a longer one is shortened at a word.
    """
    if isinstance(answer, QuestionReply):   # an answer is never shortened: it takes the parts it needs
        return _text(answer, unicode)
    return _within_limit(_text(answer, unicode))


@dataclass(frozen=True)
class Reply:
    """One reply as it is sent: the text, how it is encoded, its SMS parts, its billing outcome."""

    text: str
    encoding: gsm.Encoding
    segments: int
    message_type: MessageType


def reply(answer: Answer, *, unicode: bool = False) -> Reply:
    """The reply to `answer` (`render`), measured for sending (gsm.measure)."""
    text = render(answer, unicode=unicode)
    size = gsm.measure(text)
    return Reply(text, size.encoding, size.segments, MessageType(answer.message_type))


def card_expiry_notice(card_no: str, name: str, valid_to: date, agent: str, *, unicode: bool = False) -> str:
    """The notice to a card holder before `valid_to`. Notices are never shortened: the date matters."""
    return word(_CARD_EXPIRY, unicode).format(
        card_no=value(card_no, unicode), name=value(name, unicode), valid_to=day(valid_to),
        agent=value(agent, unicode),
    )


def payment_reminder_notice(name: str, ssn: str, paid_until: date, total_months: int, *,
                            unicode: bool = False) -> str:
    """The reminder to a voluntary participant whose paid-up period ends on `paid_until`."""
    years, months = divmod(total_months, 12)
    return word(_PAYMENT_REMINDER, unicode).format(
        name=value(name, unicode), ssn=value(ssn, unicode), paid_until=day(paid_until),
        years=years, months=months,
    )


def _check_templates() -> None:
    check_gsm7(_TEMPLATES)
    check_one_sms((_RATE_LIMITED,))


_check_templates()
