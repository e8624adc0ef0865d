"""Parser throughput: messages parsed per second over the mixed corpus of fixtures/messages.

    python bench/parse.py [--runs 7] [--repeat 30]

Runs `smsgw.language.parse` over the whole corpus (valid messages in many surface forms, the
§1a forms, every error kind and the §1b typos) `--repeat` times per run, and, in the same
process, a plain regex that accepts only the canonical forms (`BH QT 0110129425 2016 2017`...)
as a baseline. Prints the median of the runs for both and the ratio, and the rate of parse
with the reply of every error built too (the reply computes the §1b correction; the gateway
builds it, `parse` alone does not). One core: the loop is single-threaded.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from datetime import date
from pathlib import Path

from smsgw.language import ParseError, parse
from smsgw.syntax_replies import syntax_reply_for

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "messages" / "corpus.jsonl"
CANONICAL = re.compile(
    r"^(?:BH|BH HD|BH HELP|HD|HELP|\?)$"
    r"|^BH QT (\d{10}|\d{12})(?: (\d{4}|\d{6})(?: (\d{4}|\d{6}))?)?$"
    r"|^BH THE ([A-Z]{2}[1-5]\d{12}|\d{10}|\d{12})$"
    r"|^BH HS (\d{5}\.[A-Z]/\d{4}/\d{5})$"
)


def run(fn, messages: list[str], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for message in messages:
            fn(message)
    return len(messages) * repeat / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    messages = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    today = date.today()

    def with_reply(message: str) -> None:
        result = parse(message, today=today)
        if isinstance(result, ParseError):
            syntax_reply_for(result)   # builds the reply and the correction

    smsgw_rates, regex_rates, reply_rates = [], [], []
    for _ in range(args.runs):
        smsgw_rates.append(run(lambda m: parse(m, today=today), messages, args.repeat))
        regex_rates.append(run(CANONICAL.match, messages, args.repeat))
        reply_rates.append(run(with_reply, messages, args.repeat))
    ours, baseline = statistics.median(smsgw_rates), statistics.median(regex_rates)
    accepted = sum(1 for m in messages if CANONICAL.match(m))
    print(f"corpus: {len(messages)} messages x {args.repeat} per run, {args.runs} runs (medians)")
    print(f"smsgw parse (normalise + Lark LALR + checks): {ours:>12,.0f} messages/s")
    print(f"smsgw parse and every error's reply:          {statistics.median(reply_rates):>12,.0f} messages/s"
          f"  ({sum(1 for m in messages if isinstance(parse(m, today=today), ParseError))} errors)")
    print(f"canonical-only regex baseline:                {baseline:>12,.0f} messages/s"
          f"  (understands {accepted}/{len(messages)} of the corpus)")
    print(f"ratio smsgw/regex: {ours / baseline:.3f}; target >= 40,000 messages/s: "
          f"{'met' if ours >= 40_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
