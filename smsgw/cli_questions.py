"""`smsgw questions list|answer|close`: the citizens' questions (BH HOI, CONTRACT §7) and staff's answers.

`questions answer Q123 TEXT` stores the answer in one transaction with the question's answered
state: a lane-0 MT, message_type 3 (a free push), to the asker through the carrier the question
came by, pending in the outbox with its push billing row, and leased to this process. This
process then delivers it itself (one attempt, through an `Outbox`, as `smsgw notify` does).
A gateway never sends an MT under another process's unexpired lease (PostgreSQL: the claim;
SQLite: `pending` leaves it out), so an answer racing a restart of `serve` reaches the carrier
once. When the attempt fails for now, or this process dies, the lease ends (released, or run
out) and the outbox's guarantees take over: on PostgreSQL any gateway claims it (at once: a
release notifies them); on SQLite the running gateway takes it within seconds (handover.py), or
at its next start. A second answer is refused, naming who answered and when.

The answer invites a rating (`BH DG <1-5>`) when the invitation fits in the answer's SMS parts.

`questions answer Q123 --faq ENTRY_ID` answers with that FAQ entry's answer and, in the same
transaction, stores the question's text as an example of the entry (staff labelling, the way
the FAQ's coverage grows): running gateways match with it within a minute (`faq_store.keep_faq_fresh`).

`questions close Q123` ends a question without sending anything (one that needs no answer, was
answered by telephone, or whose asker's number the retention erased): it leaves the open list,
counts as handled by that staff member, and cannot be answered afterwards, nor rated.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from .cli_checks import UserError, database_path
from .clock import VIETNAM

ANSWER_LEASE = 60.0
"""Seconds an answer stays this process's to deliver when the store has no lease of its own (SQLite)."""
MAX_ANSWER = 1000
"""Characters of a staff answer at most (about 7 SMS parts of GSM-7)."""


def _at(unix: float | None) -> str:
    return datetime.fromtimestamp(unix, VIETNAM).strftime("%Y-%m-%d %H:%M") if unix is not None else "-"


def _state(question) -> str:
    if question.answered_by is not None and question.answer is None:
        return f"closed by {question.answered_by} at {_at(question.answered_at)}, no SMS"
    if question.answered_by is not None:
        return f"answered by {question.answered_by} at {_at(question.answered_at)}"
    if question.faq_id is not None:
        return f"auto-answered (faq {question.faq_id})"
    return "open"


def cmd_questions_list(args: argparse.Namespace) -> int:
    from .phones import mask
    from .store import open_messages

    async def run() -> list:
        store = await open_messages(args.db)
        try:
            return await store.questions(open_only=args.open)
        finally:
            await store.close()

    database_path(args.db)
    questions = asyncio.run(run())
    for question in questions:
        print(f"{question.number}\t{_at(question.asked_at)}\t{mask(question.sender)}\t{question.carrier}\t"
              f"{_state(question)}\t{' '.join(question.text.split())}")
    print(f"questions: {len(questions)}" + (" open" if args.open else ""), file=sys.stderr)
    return 0


async def deliver_once(store, mt, adapters: Mapping, session) -> str:
    """One attempt at `mt` through an Outbox: "sent", "pending" (retried later) or "failed"."""
    from .metrics import Metrics
    from .outbox import Outbox
    from .store import PendingMT

    done = asyncio.Event()
    outcomes: Counter = Counter()

    def on_outcome(outcome: str) -> None:
        outcomes[outcome] += 1
        done.set()

    outbox = Outbox(store, adapters, session, Metrics(), on_outcome=on_outcome)
    await outbox.start(resume=False)   # only this answer: the gateway's outbox has the others
    now = time.time()
    outbox.add(PendingMT(mt, 0, now, now))
    try:
        await done.wait()
    finally:
        await outbox.stop()
    return next(iter(outcomes))


def cmd_questions_answer(args: argparse.Namespace) -> int:
    import logging

    from .config import load_config
    from .logs import configure_logging

    if (args.text is None) == (args.faq is None):
        raise UserError("give the answer as TEXT or as --faq ENTRY_ID (one of them)")
    database_path(args.db)
    config = load_config(args.config)
    configure_logging(level=logging.WARNING)   # the line printed is the report; failures are logged
    number, by = args.number.upper(), args.by or getpass.getuser()
    text = None if args.text is None else _checked(" ".join(args.text.split()), "the answer")
    outcome, question, mt = asyncio.run(_answer(args.db, config, number, text, by, args.faq))
    print(f"{question.number} answered by {by}" + (f" with FAQ entry {args.faq}" if args.faq else "")
          + f": {mt.segments} SMS to {question.carrier}, {outcome}"
          + (" (the gateway's outbox retries it)" if outcome == "pending" else "")
          + (f"; the question is now an example of {args.faq} (running gateways match with it within a minute)"
             if args.faq else ""))
    return 0 if outcome != "failed" else 1


def _checked(text: str, what: str) -> str:
    if not text:
        raise UserError(f"{what} is empty")
    if len(text) > MAX_ANSWER:
        raise UserError(f"{what} has {len(text)} characters, at most {MAX_ANSWER} are sent")
    return text


async def _faq_answer(db: str, number: str, entry_id: str) -> str:
    """The answer of the stored FAQ's entry `entry_id`; UserError naming the question when there is none."""
    from .store.faq_entries import read_faq_entries

    entries, _ = await read_faq_entries(db)
    answers = {entry[0]: entry[2] for entry in entries}
    if entry_id not in answers:
        raise UserError(f"{number}: no FAQ entry {entry_id!r}" + ("" if answers else " (no FAQ imported: smsgw faq import)"))
    return _checked(" ".join(answers[entry_id].split()), f"FAQ entry {entry_id}'s answer")


def answer_message(question, text: str, config):
    """The MT answering `question` with staff's `text` (worded, measured, a free push), for
    `MessageStore.answer_question`; the console answers with it too."""
    from .answers import QuestionReply
    from .billing import MessageType
    from .ids import new_id
    from .replies import reply
    from .wire import OutboundMessage

    worded = reply(QuestionReply(question.number, text, invite=True), unicode=config.unicode)
    return OutboundMessage(id=new_id(), mo_id="", in_reply_to="", carrier=question.carrier, sender=config.shortcode,
                           to=question.sender, text=worded.text, encoding=worded.encoding, segments=worded.segments,
                           message_type=MessageType(worded.message_type))


async def _answer(db: str, config, number: str, text: str | None, by: str, entry_id: str | None = None):
    import aiohttp

    from .carrier import load_adapter
    from .store import erased_phone, open_messages

    store = await open_messages(db)
    try:
        known = {question.number: question for question in await store.questions()}
        if number not in known:
            raise UserError(f"no question {number} in {store.path}")
        if known[number].answered_by is not None:
            raise UserError(already(known[number]))
        if erased_phone(known[number].sender):
            raise UserError(f"{number}: its asker's number was erased ([retention] days, or smsgw data erase): "
                            "the answer cannot be sent (smsgw questions close ends it)")
        carrier = config.carriers.get(known[number].carrier)
        if carrier is None:
            raise UserError(f"{number} came by carrier {known[number].carrier!r}, which the configuration "
                            "does not have: the answer could not be sent (give --config)")
        if entry_id is not None:
            text = await _faq_answer(db, number, entry_id)

        stored = await store.answer_question(number, lambda question: answer_message(question, text, config),
                                             by=by, now=time.time(),
                                             lease=store.lease_seconds or ANSWER_LEASE, example_of=entry_id)
        if stored is None:
            raise UserError(f"no question {number} in {store.path}")
        if stored.no_entry:   # an import removed it since
            raise UserError(f"{number}: no FAQ entry {entry_id!r}")
        if stored.refused:
            raise UserError(already(stored.question))
        adapters = {carrier.name: load_adapter(carrier, shortcode=config.shortcode)}
        async with aiohttp.ClientSession() as session:
            outcome = await deliver_once(store, stored.mt, adapters, session)
        if outcome == "pending":   # to be retried: the gateways' now, not after the lease
            await store.release([stored.mt.id])
        return outcome, stored.question, stored.mt
    finally:
        await store.close()


def already(question) -> str:
    """Why a question cannot be answered or closed again: who did it and when."""
    done = "closed" if question.answer is None else "answered"
    return f"{question.number} was {done} already by {question.answered_by} at {_at(question.answered_at)} (Vietnam time)"


def cmd_questions_close(args: argparse.Namespace) -> int:
    from .store import open_messages

    async def run():
        store = await open_messages(args.db)
        try:
            return store.path, await store.answer_question(number, lambda question: None, by=by, now=time.time(),
                                                           lease=0.0)
        finally:
            await store.close()

    database_path(args.db)
    number, by = args.number.upper(), args.by or getpass.getuser()
    path, stored = asyncio.run(run())
    if stored is None:
        raise UserError(f"no question {number} in {path}")
    if stored.refused:
        raise UserError(already(stored.question))
    print(f"{stored.question.number} closed by {by}, no SMS sent")
    return 0


def add_questions_commands(sub: argparse._SubParsersAction, *, db_help: str, config_help: str) -> None:
    """The `questions` command group."""
    questions = sub.add_parser("questions", help="the citizens' questions (BH HOI) and staff's answers")
    questions_sub = questions.add_subparsers(dest="questions_command", required=True, metavar="QUESTIONS_COMMAND")
    p = questions_sub.add_parser("list", help="one line a question: number, asked at, phone (masked), carrier, "
                                              "state, text")
    p.add_argument("--open", action="store_true",
                   help="only the questions neither staff nor the FAQ answered (default: every question)")
    p.add_argument("--db", required=True, metavar="PATH", help=db_help + "; the gateway's messages are in it")
    p.set_defaults(func=cmd_questions_list)
    p = questions_sub.add_parser("answer", help="send a staff answer to the asker (once), through the carrier "
                                                "the question came by")
    p.add_argument("number", metavar="Q123", help="the question's number")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the answer (or --faq)")
    p.add_argument("--faq", metavar="ENTRY_ID",
                   help="answer with this FAQ entry's answer instead of TEXT, and keep the question as an example "
                        "of the entry (running gateways match with it within a minute); default: none, TEXT is sent")
    p.add_argument("--by", metavar="NAME", help="who answers (default: the user running the command)")
    p.add_argument("--db", required=True, metavar="PATH", help=db_help + "; the gateway's messages are in it")
    p.add_argument("--config", metavar="FILE", help=config_help + "; its carriers deliver the answer")
    p.set_defaults(func=cmd_questions_answer)
    p = questions_sub.add_parser("close", help="end a question without sending anything (it needs no answer, "
                                               "was answered otherwise, or its asker's number was erased)")
    p.add_argument("number", metavar="Q123", help="the question's number")
    p.add_argument("--by", metavar="NAME", help="who closes it (default: the user running the command)")
    p.add_argument("--db", required=True, metavar="PATH", help=db_help + "; the gateway's messages are in it")
    p.set_defaults(func=cmd_questions_close)
