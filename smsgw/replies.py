"""Every text the gateway sends to a citizen, and the one place where it is worded.

`reply(answer)` is the step of the message path after dispatch: an Answer (answers.py) in, a
`Reply` out: its text, its encoding and SMS parts (gsm.py), and the billing outcome it carries.

Each template is written once, in Vietnamese with diacritics. The default reply is that template
folded (`gsm.fold`) to plain GSM-7 text; with `unicode=True` the diacritics stay and the reply
goes as UCS-2. Every folded template is checked to be GSM-7 when this module is imported, every
syntax reply to fit one SMS, and no reply ever takes more than MAX_SEGMENTS parts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from . import gsm
from .answers import (
    Answer, BusyAnswer, CardAnswer, DossierAnswer, HelpAnswer, NotFoundAnswer, NotOwnerAnswer, QTAnswer,
    RateLimitedAnswer, RoutedAnswer, SyntaxAnswer, Totals,
)
from .billing import MessageType
from .commands import COMMAND_NAMES, ERROR_CODES, Month

if TYPE_CHECKING:
    from .language import ParseError

MAX_SEGMENTS = 3

_HELP = (
    "Tra cứu BHXH, soạn tin gửi 8079: BH QT <mã số BHXH> xem quá trình đóng; "
    "BH THE <mã thẻ BHYT> xem hạn thẻ; BH HS <mã hồ sơ> xem hồ sơ. VD: BH QT 0110129425"
)
_UNKNOWN_COMMAND = (
    "Sai lệnh. Soạn BH QT <mã số BHXH> (quá trình đóng), BH THE <mã thẻ BHYT> (hạn thẻ) "
    "hoặc BH HS <mã hồ sơ> gửi 8079. VD: BH QT 0110129425"
)
_QT_RANGE_EXAMPLE = "VD: BH QT 0110129425 012016 122017"

# (error, command) -> reply; a pair not listed falls back to _USAGE of the command.
_SYNTAX = {
    ("missing_argument", "QT"): (
        "Thiếu mã số. Soạn BH QT <mã số BHXH 10 số hoặc CCCD 12 số> gửi 8079. VD: BH QT 0110129425"
    ),
    ("missing_argument", "THE"): (
        "Thiếu mã thẻ. Soạn BH THE <mã thẻ BHYT 15 ký tự hoặc mã số BHXH> gửi 8079. "
        "VD: BH THE HC4010110129425"
    ),
    ("missing_argument", "HS"): (
        "Thiếu mã hồ sơ. Soạn BH HS <mã hồ sơ> gửi 8079. VD: BH HS 04486.G/2019/08708"
    ),
    ("bad_id", "QT"): (
        "Mã số sai: mã số BHXH gồm 10 chữ số (hoặc CCCD 12 chữ số). Soạn BH QT <mã số> gửi 8079. "
        "VD: BH QT 0110129425"
    ),
    ("bad_id", "THE"): (
        "Mã thẻ sai: 15 ký tự gồm 2 chữ cái, 1 số mức hưởng 1-5, 2 số tỉnh, 10 số mã BHXH. "
        "Soạn BH THE <mã thẻ hoặc mã số BHXH> gửi 8079. VD: BH THE HC4010110129425"
    ),
    ("bad_id", "HS"): (
        "Mã hồ sơ sai: dạng 5 số.chữ cái/năm/5 số. Soạn BH HS <mã hồ sơ> gửi 8079. "
        "VD: BH HS 04486.G/2019/08708"
    ),
    ("bad_period", "QT"): (
        "Thời gian sai. Ghi năm (từ 1960): 2016; tháng/năm: 012016, 1/2016, 01-2016, 1.2016; "
        "khoảng: 2016-2017. Gửi 8079. " + _QT_RANGE_EXAMPLE
    ),
    ("range_reversed", "QT"): (
        "Thời gian sai: <từ> không được sau <đến>. Soạn BH QT <mã số> <từ> <đến> gửi 8079. "
        + _QT_RANGE_EXAMPLE
    ),
    ("trailing_input", "HELP"): (
        "Có ký tự thừa sau lệnh hướng dẫn. Để xem hướng dẫn, soạn BH HD gửi 8079."
    ),
}
_USAGE = {
    "QT": (
        "Có ký tự thừa. Soạn BH QT <mã số> hoặc BH QT <mã số> <từ> <đến> gửi 8079. "
        + _QT_RANGE_EXAMPLE
    ),
    "THE": (
        "Có ký tự thừa. Soạn BH THE <mã thẻ BHYT hoặc mã số BHXH> gửi 8079. "
        "VD: BH THE HC4010110129425"
    ),
    "HS": "Có ký tự thừa. Soạn BH HS <mã hồ sơ> gửi 8079. VD: BH HS 04486.G/2019/08708",
    "HELP": _SYNTAX[("trailing_input", "HELP")],
}
# A number whose digit groups join both to 10 and to 12 digits (language.DIGIT_GROUPS).
_DIGIT_GROUPS = {
    command: (
        "Mã số sai: các nhóm số ghép được thành cả 10 số (mã số BHXH) lẫn 12 số (CCCD). "
        f"Soạn mã số liền, không dấu cách, gửi 8079. VD: BH {command} 0110129425"
    )
    for command in ("QT", "THE")
}
# Replies that correct the message (CONTRACT §1b): what was wrong, then the whole corrected
# message, last, so that nothing of the reply sticks to it when it is copied. The first
# template that fits one GSM-7 SMS with the message is sent: a long corrected message (a
# 12-digit id and two month-years) gets a shorter rest.
_CORRECTION_LEAD = {
    "empty": "Tin nhắn trống.",
    "unknown_keyword": "Sai từ khóa.",
    "unknown_command": "Sai lệnh.",
    "missing_argument": "Thiếu mã.",
    "bad_id": "Sai lệnh hoặc sai mã.",
    "bad_period": "Thời gian sai.",
    "range_reversed": "Thời gian sai: <từ> không được sau <đến>.",
    "trailing_input": "Có ký tự thừa.",
}
_CORRECTIONS = (
    "{lead} Có phải bạn muốn gửi tin nhắn sau? Vui lòng soạn lại đúng như vậy và gửi 8079: {message}",
    "{lead} Vui lòng soạn lại đúng như sau và gửi 8079: {message}",
    "{lead} Soạn lại gửi 8079: {message}",
)

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

TEMPLATES = (
    _HELP, _UNKNOWN_COMMAND, *_SYNTAX.values(), *_USAGE.values(), *_DIGIT_GROUPS.values(),
    *_CORRECTION_LEAD.values(), *_CORRECTIONS, _QT_WHOLE, _QT_PERIOD, _QT_UNTIL, _QT_SINCE, _QT_TOTALS, _CARD_VALID, _CARD_EXPIRED, _DOSSIER, *_DOSSIER_STATUS.values(),
    *_NOT_FOUND.values(), _NOT_OWNER, *_NOT_OWNER_TOPIC.values(), _BUSY, _RATE_LIMITED,
    _CARD_EXPIRY, _PAYMENT_REMINDER,
)
"""Every template, with diacritics; their folded forms are the default replies."""


@functools.lru_cache(maxsize=None)
def _folded(template: str) -> str:
    return gsm.fold(template)


def _word(template: str, unicode: bool) -> str:
    return template if unicode else _folded(template)


def _value(text: str, unicode: bool) -> str:
    """A value put into a template: in the default form, folded and kept inside GSM-7."""
    if unicode or text.isascii() and gsm.is_gsm7(text):
        return text
    return "".join(char if gsm.is_gsm7(char) else "?" for char in gsm.fold(text))


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


def _day(value: date) -> str:
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"


def _month(value: Month) -> str:
    return f"{value.month:02d}/{value.year:04d}"


def _totals(totals: Totals, unicode: bool) -> str:
    bhxh_years, bhxh_months = divmod(totals.bhxh_months, 12)
    bhtn_years, bhtn_months = divmod(totals.bhtn_months, 12)
    return _word(_QT_TOTALS, unicode).format(
        bhxh_years=bhxh_years, bhxh_months=bhxh_months, bhtn_years=bhtn_years, bhtn_months=bhtn_months,
    )


def _qt(answer: QTAnswer, unicode: bool) -> str:
    ssn = _value(answer.ssn, unicode)
    asked = _totals(answer.asked, unicode)
    if answer.end is None or answer.whole is None:
        return _word(_QT_WHOLE, unicode).format(ssn=ssn, asked=asked)
    if answer.start is None:
        period = _word(_QT_UNTIL, unicode).format(end=_month(answer.end))
    elif answer.until_now:
        period = _word(_QT_SINCE, unicode).format(start=_month(answer.start))
    else:
        period = _month(answer.start)
        if answer.end != answer.start:
            period += "-" + _month(answer.end)
    whole = _totals(answer.whole, unicode)
    return _word(_QT_PERIOD, unicode).format(ssn=ssn, period=period, asked=asked, whole=whole)


def _card(answer: CardAnswer, unicode: bool) -> str:
    template = _CARD_EXPIRED if answer.expired else _CARD_VALID
    return _word(template, unicode).format(
        card_no=_value(answer.card_no, unicode), valid_to=_day(answer.valid_to),
    )


def _dossier(answer: DossierAnswer, unicode: bool) -> str:
    if answer.status not in _DOSSIER_STATUS:
        raise ValueError(f"unknown dossier status {answer.status!r}")
    return _word(_DOSSIER, unicode).format(
        code=_value(answer.code, unicode),
        status=_word(_DOSSIER_STATUS[answer.status], unicode),
        updated_at=_day(answer.updated_at),
    )


def _text(answer: Answer, unicode: bool) -> str:
    match answer:
        case HelpAnswer():
            return help_text(unicode=unicode)
        case SyntaxAnswer(error=error, command=command, correction=correction, detail=detail):
            return syntax_reply(error, command, unicode=unicode, correction=correction, detail=detail)
        case NotFoundAnswer(command=command, id=ident):
            return _word(_NOT_FOUND[command], unicode).format(id=_value(ident, unicode))
        case NotOwnerAnswer(command=command):
            topic = _word(_NOT_OWNER_TOPIC[command], unicode)
            return _word(_NOT_OWNER, unicode).format(topic=topic)
        case QTAnswer():
            return _qt(answer, unicode)
        case CardAnswer():
            return _card(answer, unicode)
        case DossierAnswer():
            return _dossier(answer, unicode)
        case RoutedAnswer(text=text):
            return _value(text, unicode)
        case BusyAnswer(keyword=keyword):
            return _word(_BUSY, unicode).format(keyword=_value(keyword, unicode))
        case RateLimitedAnswer(limit=limit):
            return _word(_RATE_LIMITED, unicode).format(limit=limit)
    raise TypeError(f"not an Answer: {answer!r}")


def render(answer: Answer, *, unicode: bool = False) -> str:
    """The reply text for `answer`: folded GSM-7 by default, with diacritics when `unicode`.

    The text never takes more than MAX_SEGMENTS SMS parts; a longer one is shortened at a word.
    """
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


def help_text(*, unicode: bool = False) -> str:
    """Usage of QT, THE and HS on short code 8079; one GSM-7 SMS in the default form."""
    return _word(_HELP, unicode)


def correcting_reply(error: str, message: str, *, unicode: bool = False) -> str | None:
    """The reply quoting `message`, the corrected message, after what was wrong; None when no
    wording fits one GSM-7 SMS with it (the plain syntax reply is sent then)."""
    lead = _CORRECTION_LEAD[error]
    message = _value(message, False)
    for template in _CORRECTIONS:
        text = _folded(template).format(lead=_folded(lead), message=message)
        if gsm.measure(text).segments == 1:
            return template.format(lead=lead, message=message) if unicode else text
    return None


def syntax_reply(error: str, command: str | None, *, unicode: bool = False, correction: str | None = None,
                 detail: str | None = None) -> str:
    """The reply to a message that could not be parsed: what was wrong and the right syntax.

    `error` is a CONTRACT §1 error code, `command` the command recognised before the error (QT,
    HS, THE, HELP) or None. With `correction` (the whole corrected message, CONTRACT §1b) the
    reply quotes it instead; `detail` "digit_groups" asks for a number without spaces. The
    default form is one GSM-7 SMS and names short code 8079.
    """
    if error not in ERROR_CODES:
        raise ValueError(f"unknown syntax error code {error!r}")
    if command is not None and command not in COMMAND_NAMES:
        raise ValueError(f"unknown command {command!r}")
    if correction is not None:
        corrected = correcting_reply(error, correction, unicode=unicode)
        if corrected is not None:
            return corrected
    if detail == "digit_groups" and command in _DIGIT_GROUPS:
        return _word(_DIGIT_GROUPS[command], unicode)
    if error in ("empty", "unknown_keyword"):
        return help_text(unicode=unicode)
    if command is None:
        return _word(_UNKNOWN_COMMAND, unicode)
    return _word(_SYNTAX.get((error, command), _USAGE[command]), unicode)


def syntax_reply_for(error: ParseError, *, unicode: bool = False) -> str:
    """The reply to a message the language could not parse (`language.ParseError`)."""
    return syntax_reply(error.error, error.command, unicode=unicode, correction=error.correction,
                        detail=error.detail)


def quoted_correction(error: ParseError) -> str | None:
    """The corrected message the reply to `error` quotes (CONTRACT §1b), or None when it quotes
    none: no likely correction, or none worded to fit one SMS with it."""
    correction = error.correction
    if correction is None or correcting_reply(error.error, correction) is None:
        return None
    return correction


def card_expiry_notice(card_no: str, name: str, valid_to: date, agent: str, *, unicode: bool = False) -> str:
    """The notice to a card holder before `valid_to`. Notices are never shortened: the date matters."""
    return _word(_CARD_EXPIRY, unicode).format(
        card_no=_value(card_no, unicode), name=_value(name, unicode), valid_to=_day(valid_to),
        agent=_value(agent, unicode),
    )


def payment_reminder_notice(name: str, ssn: str, paid_until: date, total_months: int, *,
                            unicode: bool = False) -> str:
    """The reminder to a voluntary participant whose paid-up period ends on `paid_until`."""
    years, months = divmod(total_months, 12)
    return _word(_PAYMENT_REMINDER, unicode).format(
        name=_value(name, unicode), ssn=_value(ssn, unicode), paid_until=_day(paid_until),
        years=years, months=months,
    )


def _check_templates() -> None:
    for template in TEMPLATES:
        if not gsm.is_gsm7(gsm.fold(template)):
            raise RuntimeError(f"template is not GSM-7 once folded: {template!r}")
    for template in (_HELP, _UNKNOWN_COMMAND, *_SYNTAX.values(), *_USAGE.values(), _RATE_LIMITED):
        if gsm.measure(gsm.fold(template)).segments != 1:
            raise RuntimeError(f"syntax reply does not fit one SMS: {template!r}")
    longest = "BH QT 001090012345 01/2016 12/2017"  # the longest corrected lookup
    for error in ERROR_CODES:
        if correcting_reply(error, longest) is None:
            raise RuntimeError(f"no correcting reply for {error} fits one SMS with {longest!r}")


_check_templates()
