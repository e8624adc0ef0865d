"""The texts of the conversation commands (CONTRACT §7): a question's acknowledgment and its
answer (FAQ or staff), the thanks for a rating, the opt-out and opt-in confirmations.

Worded like replies.py: each template once, with diacritics; folded to GSM-7 by default.
An answer is never shortened (staff wrote it; the FAQ's entry is whole): it takes the SMS parts
it needs. The rating invitation is added to a staff answer only when its SMS parts stay as many
(gsm.measure counts).
"""

from __future__ import annotations

from . import gsm
from .answers import OptOutAnswer, QuestionAnswer, QuestionReply, RatingAnswer
from .wording import check_gsm7, check_one_sms, day, value, word

_ACK_WITHIN_HOURS = (
    "BHXH đã nhận câu hỏi số {number}. Cán bộ sẽ trả lời qua tin nhắn trong giờ làm việc ({hours})."
)
_ACK_LATER = (
    "BHXH đã nhận câu hỏi số {number}. Cán bộ sẽ trả lời qua tin nhắn từ {time} ngày {day}."
)
_ACK_AUTO = "BHXH đã nhận câu hỏi số {number}. Trả lời ở tin nhắn tiếp theo."
_ANSWER = "Trả lời câu hỏi {number}: {text}"
_INVITE = " Đánh giá: soạn BH DG <1-5> gửi 8079."
_RATING_THANKS = "Cảm ơn bạn đã đánh giá {rating}/5. Ý kiến của bạn giúp BHXH phục vụ tốt hơn."
_STOPPED = (
    "Bạn đã ngừng nhận thông báo của BHXH qua tin nhắn (trừ mã xác thực). Để nhận lại, soạn BH DK gửi 8079."
)
_RESUMED = "Bạn sẽ nhận lại thông báo của BHXH qua tin nhắn. Để ngừng nhận, soạn BH TC gửi 8079."

TEMPLATES = (_ACK_WITHIN_HOURS, _ACK_LATER, _ACK_AUTO, _ANSWER, _INVITE, _RATING_THANKS, _STOPPED, _RESUMED)


def acknowledgment(answer: QuestionAnswer, unicode: bool) -> str:
    if answer.auto_answered:
        return word(_ACK_AUTO, unicode).format(number=answer.number)
    if answer.expected is None:
        return word(_ACK_WITHIN_HOURS, unicode).format(number=answer.number, hours=answer.hours)
    return word(_ACK_LATER, unicode).format(number=answer.number, time=f"{answer.expected:%H:%M}",
                                            day=day(answer.expected.date()))


def question_reply(answer: QuestionReply, unicode: bool) -> str:
    """The answer to a question; with `invite`, the rating invitation when the parts stay as many."""
    text = word(_ANSWER, unicode).format(number=answer.number, text=value(answer.text, unicode))
    if answer.invite:
        invited = text + word(_INVITE, unicode)
        if gsm.measure(invited).segments == gsm.measure(text).segments:
            return invited
    return text


def text_of(answer: QuestionAnswer | QuestionReply | RatingAnswer | OptOutAnswer, unicode: bool) -> str:
    match answer:
        case QuestionAnswer():
            return acknowledgment(answer, unicode)
        case QuestionReply():
            return question_reply(answer, unicode)
        case RatingAnswer(rating=rating):
            return word(_RATING_THANKS, unicode).format(rating=rating)
        case OptOutAnswer(stopped=stopped):
            return word(_STOPPED if stopped else _RESUMED, unicode)
    raise TypeError(f"not a conversation answer: {answer!r}")


def _check_templates() -> None:
    check_gsm7(TEMPLATES)
    check_one_sms((_ACK_WITHIN_HOURS, _ACK_LATER, _ACK_AUTO, _RATING_THANKS, _STOPPED, _RESUMED))


_check_templates()
