"""Memory: resident set size of `smsgw serve` on a large store, before and after a stream of MOs.

    python bench/memory.py [--persons 1000000] [--messages 100000] [--concurrency 32]

Uses the store of bench/e2e.py (seeded once, cached under bench/.cache/), starts `smsgw serve`
(sync generic carrier, protection limits off so that every MO is answered), sends the messages
of the e2e mix, each new and signed, and prints VmRSS and VmHWM (the peak) from /proc after
start-up and after the stream. Target (issue 6): <= 150 MB after 100,000 messages at 1M persons.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from e2e import SECRET, fresh_copy, message_mix, seeded_store

from smsgw.adapters.generic import signature_headers


def rss(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


async def stream(url: str, messages: list[tuple[str, str]], concurrency: int) -> float:
    import json

    queue = iter(enumerate(messages))
    tag = time.time_ns()

    async def worker(session: aiohttp.ClientSession) -> None:
        for n, (sender, text) in queue:
            body = json.dumps({"id": f"mem-{tag}-{n}", "from": sender, "to": "8079", "text": text}).encode()
            headers = {"Content-Type": "application/json",
                       **signature_headers(SECRET, body, timestamp=int(time.time()))}
            async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    db = seeded_store(args.persons)
    messages = message_mix(db, args.messages, random.Random(79))
    with tempfile.TemporaryDirectory(prefix="smsgw-memory-") as tmp:
        config = Path(tmp) / "smsgw.toml"
        config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nrequire_timestamp = true\nmode = "sync"\n'
                          "[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n")
        served = fresh_copy(db, Path(tmp))
        process = subprocess.Popen([sys.executable, "-m", "smsgw", "serve", "--db", str(served), "--config", str(config),
                                    "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = process.stdout.readline().split()[-1]
            before = rss(process.pid)
            rate = asyncio.run(stream(url, messages, args.concurrency))
            after = rss(process.pid)
        finally:
            process.terminate()
            process.wait()
    print(f"smsgw serve, {args.persons:,} persons: RSS {before['VmRSS']:.0f} MB after start-up, "
          f"{after['VmRSS']:.0f} MB after {args.messages:,} messages (peak {after['VmHWM']:.0f} MB; "
          f"{rate:,.0f} messages/s); target <= 150 MB: {'met' if after['VmHWM'] <= 150 else 'NOT met'}")


if __name__ == "__main__":
    main()
