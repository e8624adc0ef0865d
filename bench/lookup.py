"""Latency of the lookup a QT command makes (`person_with_periods`, one joined statement) as the store grows.

Databases of 10k and 1M persons (and 10M with --ten-million) are seeded once and cached under
bench/.cache/. Prints p50 and p99 per size and the ratio of each size to 10k (target <= 1.5).

    python bench/lookup.py [--lookups N] [--rounds R] [--ten-million]

Each lookup is one aiosqlite round trip to its worker thread; on a busy 2-core machine that
hand-off dominates the figures (`taskset -c 0 python bench/lookup.py` shows SQLite's own share).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import time
from pathlib import Path

from smsgw.seed import seed_database
from smsgw.store import SqliteStore

CACHE = Path(__file__).resolve().parent / ".cache"
SEED = 0


async def database(persons: int) -> Path:
    path = CACHE / f"records-{persons}-seed{SEED}.db"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        for leftover in CACHE.glob(partial.name + "*"):
            leftover.unlink()
        print(f"seeding {persons:,} persons into {path} (once)")
        await seed_database(partial, persons, SEED)
        partial.rename(path)
    return path


def sample_ssns(path: Path, count: int) -> list[str]:
    """Random existing ssns, read straight from the file (a benchmark harness, not the product)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (highest,) = db.execute("SELECT max(rowid) FROM persons").fetchone()
        rng = random.Random(1)
        ssns = []
        while len(ssns) < count:
            row = db.execute("SELECT ssn FROM persons WHERE rowid = ?", (rng.randint(1, highest),)).fetchone()
            if row:
                ssns.append(row[0])
    return ssns


async def measure(path: Path, lookups: int) -> tuple[float, float]:
    ssns = sample_ssns(path, lookups)
    store = await SqliteStore.open(path)
    try:
        for ssn in ssns[:1000]:  # warm up: statement cache, first pages
            await store.person_with_periods(ssn)
        timings = []
        for ssn in ssns:
            started = time.perf_counter()
            found = await store.person_with_periods(ssn)
            timings.append(time.perf_counter() - started)
            assert found is not None
    finally:
        await store.close()
    cuts = statistics.quantiles(timings, n=100)
    return cuts[49] * 1e6, cuts[98] * 1e6


async def run(lookups: int, sizes: list[int], rounds: int) -> None:
    paths = {persons: await database(persons) for persons in sizes}
    runs: dict[int, list[tuple[float, float]]] = {persons: [] for persons in sizes}
    for _ in range(rounds):  # sizes take turns, so that drift in the machine hits them alike
        for persons, path in paths.items():
            runs[persons].append(await measure(path, lookups))
    results = {persons: (statistics.median(p50 for p50, _ in found), statistics.median(p99 for _, p99 in found))
               for persons, found in runs.items()}
    base_p50, base_p99 = results[sizes[0]]
    print(f"{'persons':>12} {'p50 us':>9} {'p99 us':>9} {'p50/10k':>8} {'p99/10k':>8}")
    for persons, (p50, p99) in results.items():
        print(f"{persons:>12,} {p50:>9.0f} {p99:>9.0f} {p50 / base_p50:>8.2f} {p99 / base_p99:>8.2f}")
    print(f"median of {rounds} rounds of {lookups:,} QT lookups (person_with_periods) per size,"
          " random existing ssns; target ratio <= 1.5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ten-million", action="store_true", help="also measure a 10,000,000-person database")
    args = parser.parse_args()
    sizes = [10_000, 1_000_000] + ([10_000_000] if args.ten_million else [])
    asyncio.run(run(args.lookups, sizes, args.rounds))


if __name__ == "__main__":
    main()
