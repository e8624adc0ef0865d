"""What a message that was not understood gets: the help, the right syntax, a correction quoted.

`syntax_reply_for(error)` words the reply to a `language.ParseError`: what was wrong and the
syntax of what was tried (CONTRACT §1), or, when one correction is likely, the whole corrected
message quoted (§1b, `corrections.py`). `help_text` is also the answer to a help request.

Each template is written once, in Vietnamese with diacritics (wording.py gives its two forms).
When this module is imported every template is checked to be GSM-7 once folded, every syntax
reply to fit one SMS, and a correcting reply to fit one SMS with the longest corrected lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import gsm
from .commands import COMMAND_NAMES, ERROR_CODES
from .wording import check_gsm7, check_one_sms, folded, value, word

if TYPE_CHECKING:
    from .language import ParseError

# The help and the reply to an unknown command name BH HOI beside the lookups: a citizen who
# writes a question after BH ("BH cho hoi ...") learns how to send it to staff.
_HELP = (
    "Soạn tin gửi 8079: BH QT <mã số BHXH> quá trình đóng; BH THE <mã thẻ BHYT> hạn thẻ; "
    "BH HS <mã hồ sơ> hồ sơ; BH HOI <câu hỏi> hỏi cán bộ. VD: BH QT 0110129425"
)
_UNKNOWN_COMMAND = (
    "Sai lệnh. Soạn BH QT <mã số BHXH> (quá trình đóng), BH THE <mã thẻ BHYT> (hạn thẻ), "
    "BH HS <mã hồ sơ> hoặc BH HOI <câu hỏi> gửi 8079. VD: BH QT 0110129425"
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
    # the conversation commands (CONTRACT §7)
    ("missing_argument", "HOI"): (
        "Thiếu câu hỏi. Soạn BH HOI <câu hỏi của bạn> gửi 8079. VD: BH HOI thủ tục cấp lại thẻ BHYT"
    ),
    ("missing_argument", "DG"): (
        "Thiếu điểm đánh giá. Soạn BH DG <điểm 1-5> <góp ý nếu có> gửi 8079, 5 là tốt nhất. VD: BH DG 5"
    ),
    ("bad_id", "DG"): (
        "Điểm đánh giá sai: từ 1 đến 5, 5 là tốt nhất. Soạn BH DG <điểm 1-5> <góp ý nếu có> gửi 8079. "
        "VD: BH DG 5"
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
    "HOI": _SYNTAX[("missing_argument", "HOI")],
    "DG": _SYNTAX[("bad_id", "DG")],
    "TC": "Có ký tự thừa. Để ngừng nhận thông báo, soạn BH TC gửi 8079. Để nhận lại, soạn BH DK.",
    "DK": "Có ký tự thừa. Để nhận lại thông báo, soạn BH DK gửi 8079.",
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

TEMPLATES = (
    _HELP, _UNKNOWN_COMMAND, *_SYNTAX.values(), *_USAGE.values(), *_DIGIT_GROUPS.values(),
    *_CORRECTION_LEAD.values(), *_CORRECTIONS,
)
"""Every template of this module, with diacritics; their folded forms are the default replies."""


def help_text(*, unicode: bool = False) -> str:
    """Usage of QT, THE, HS and HOI on short code 8079; one GSM-7 SMS in the default form."""
    return word(_HELP, unicode)


def correcting_reply(error: str, message: str, *, unicode: bool = False) -> str | None:
    """The reply quoting `message`, the corrected message, after what was wrong; None when no
    wording fits one GSM-7 SMS with it (the plain syntax reply is sent then)."""
    lead = _CORRECTION_LEAD[error]
    message = value(message, False)
    for template in _CORRECTIONS:
        text = folded(template).format(lead=folded(lead), message=message)
        if gsm.measure(text).segments == 1:
            return template.format(lead=lead, message=message) if unicode else text
    return None


def syntax_reply(error: str, command: str | None, *, unicode: bool = False, correction: str | None = None,
                 detail: str | None = None) -> str:
    """The reply to a message that could not be parsed: what was wrong and the right syntax.

    `error` is a CONTRACT §1 error code, `command` the command recognised before the error (one
    of commands.COMMAND_NAMES) or None. With `correction` (the whole corrected message, CONTRACT §1b) the
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
        return word(_DIGIT_GROUPS[command], unicode)
    if error in ("empty", "unknown_keyword"):
        return help_text(unicode=unicode)
    if command is None:
        return word(_UNKNOWN_COMMAND, unicode)
    return word(_SYNTAX.get((error, command), _USAGE[command]), unicode)


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


def _check_templates() -> None:
    check_gsm7(TEMPLATES)
    check_one_sms((_HELP, _UNKNOWN_COMMAND, *_SYNTAX.values(), *_USAGE.values()))
    longest = "BH QT 001090012345 01/2016 12/2017"  # the longest corrected lookup
    for error in ERROR_CODES:
        if correcting_reply(error, longest) is None:
            raise RuntimeError(f"no correcting reply for {error} fits one SMS with {longest!r}")


_check_templates()
