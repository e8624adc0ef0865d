"""In-process replay throughput: `smsgw replay` of 100,000 messages.

    python bench/replay.py [--messages 100000] [--persons 10000] [--runs 3]

Builds (once, cached under bench/.cache/) a seeded store, writes a transcript of N messages by
repeating the reference transcripts of fixtures/transcripts (every command, every error kind,
owners and strangers, with their expected replies), then runs the real CLI
`smsgw replay FILE --db DB` in a subprocess `--runs` times and reports the median rate it
prints. Target: >= 10,000 messages/s.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SOURCES = [ROOT / "fixtures" / "transcripts" / n for n in ("qt.txt", "the.txt", "hs.txt", "errors.txt")]


def build_transcript(path: Path, messages: int) -> None:
    exchanges: list[list[str]] = []
    for source in SOURCES:
        for line in source.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if " > " in line or line.rstrip().endswith(">"):
                exchanges.append([line])
            else:
                exchanges[-1].append(line)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(messages):
            fh.write("\n".join(exchanges[i % len(exchanges)]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    db = CACHE / f"replay-{args.persons}.db"
    if not db.exists():
        subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", str(db),
                        "--persons", str(args.persons)], check=True)
    transcript = CACHE / f"replay-{args.messages}.txt"
    build_transcript(transcript, args.messages)

    rates = []
    for _ in range(args.runs):
        result = subprocess.run([sys.executable, "-m", "smsgw", "replay", str(transcript), "--db", str(db)],
                                capture_output=True, text=True)
        line = result.stdout.strip().splitlines()[-1]
        if result.returncode != 0:
            sys.exit(f"replay failed: {line}\n{result.stderr[-2000:]}")
        rates.append(float(re.search(r"([\d,]+) messages/s", line).group(1).replace(",", "")))
        print(line)
    median = statistics.median(rates)
    print(f"median: {median:,.0f} messages/s over {args.runs} runs of {args.messages:,} messages "
          f"({args.persons:,} persons); target >= 10,000: {'met' if median >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
