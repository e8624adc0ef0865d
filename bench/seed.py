"""Seed N synthetic persons into a temporary file and print the rate (target: 1,000,000 in < 120 s).

    python bench/seed.py [--persons N] [--seed S]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from smsgw.seed import seed_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smsgw-seed-") as directory:
        path = os.path.join(directory, "records.db")
        started = time.perf_counter()
        summary = asyncio.run(seed_database(path, args.persons, args.seed))
        seconds = time.perf_counter() - started
        size = os.path.getsize(path)
    print(summary)
    print(f"persons: {args.persons:,}  seconds: {seconds:.1f}  persons/s: {args.persons / seconds:,.0f}"
          f"  file: {size / 2**20:,.0f} MiB  (target: 1,000,000 persons in < 120 s)")


if __name__ == "__main__":
    main()
