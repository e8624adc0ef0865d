"""The conversation commands (CONTRACT §7): HOI, DG, TC, DK -> the reply and the durable effect.

Nothing is written here: the effect (store.Effect) goes with the MO to `MessageStore.store_mo`,
which writes it in the MO's own transaction, so a carrier's retry of the same MO never asks a
second question or rates twice. A question's replies depend on its number, which the store
gives (a sequence): `Handled.numbered(number)` words them, the acknowledgment (charged) and,
when the FAQ answers the question with confidence, that answer at once as a free push.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .answers import OptOutAnswer, QuestionAnswer, QuestionReply, RatingAnswer
from .commands import DG, DK, HOI, TC, Conversation
from .replies import Reply, reply
from .store import Effect
from .working_hours import QuestionsConfig

if TYPE_CHECKING:   # the FAQ loads scikit-learn: only where an FAQ is built
    from .faq import Faq

QUESTION = "question"
RATING = "rating"
OPT_OUT = "opt_out"
OPT_IN = "opt_in"
UNNUMBERED = "Q"
"""The number a question's acknowledgment shows before the store numbers it (never sent: see Handled)."""


def conversation_fields(command: Conversation) -> dict:
    """The fields `smsgw parse` prints for a conversation command, beside `ok` and `command`."""
    fields: dict = {"id": None, "id_kind": None, "from": None, "to": None}
    if isinstance(command, HOI):
        fields["question"] = command.question
    elif isinstance(command, DG):
        fields["rating"] = command.rating
        fields["comment"] = command.comment
    return fields


@dataclass(frozen=True)
class Handled:
    """A conversation command answered: its reply, its effect, and for a question the replies
    once numbered (`numbered(number)`, called by the store in the MO's transaction)."""

    reply: Reply
    effect: Effect
    numbered: Callable[[str], list[Reply]] | None = None


class Conversations:
    """Answers HOI, DG, TC and DK under `[questions]`, with an optional FAQ for questions."""

    def __init__(self, questions: QuestionsConfig, faq: Faq | None, *, unicode: bool) -> None:
        self.questions = questions
        self.faq = faq
        self.unicode = unicode

    def handle(self, command: Conversation, now: datetime) -> Handled:
        if isinstance(command, HOI):
            return self._question(command, now)
        if isinstance(command, DG):
            return Handled(reply(RatingAnswer(command.rating), unicode=self.unicode),
                           Effect(RATING, text=command.comment, rating=command.rating))
        if isinstance(command, TC):
            return Handled(reply(OptOutAnswer(stopped=True), unicode=self.unicode), Effect(OPT_OUT))
        if isinstance(command, DK):
            return Handled(reply(OptOutAnswer(stopped=False), unicode=self.unicode), Effect(OPT_IN))
        raise TypeError(f"not a conversation command: {command!r}")

    def _question(self, command: HOI, now: datetime) -> Handled:
        match = self.faq.match(command.question) if self.faq is not None else None
        answer = match.answer if match is not None else None
        expected = self.questions.expected_answer(now)

        def numbered(number: str) -> list[Reply]:
            ack = QuestionAnswer(number, expected, self.questions.hours, auto_answered=answer is not None)
            replies = [reply(ack, unicode=self.unicode)]
            if answer is not None:
                replies.append(reply(QuestionReply(number, answer), unicode=self.unicode))
            return replies

        effect = Effect(QUESTION, text=command.question,
                        faq_id=match.entry.id if answer is not None and match is not None else None)
        return Handled(numbered(UNNUMBERED)[0], effect, numbered)
