"""A real `smsgw serve` against slow, malformed and stalled clients (smsgw/listener.py)."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from test_gateway import OWNER, SECRET, SSN, make_records, mo_body

from smsgw.adapters.generic import sign

pytestmark = pytest.mark.slow

CARD = "HC4010110129425"
MO_HEAD = "POST /carriers/generic/mo HTTP/1.1\r\nHost: smsgw\r\nContent-Type: application/json\r\n"


@asynccontextmanager
async def serving(tmp_path: Path, server_table: str = "", file_limit: int | None = None):
    """`smsgw serve` on a free port (optionally under `ulimit -n file_limit`); yields (process, url, log)."""
    db, config, log = tmp_path / "records.db", tmp_path / "smsgw.toml", tmp_path / "serve.log"
    if not db.exists():
        await make_records(db)
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nmode = "sync"\n'
                      f'[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n{server_table}')

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

    with open(log, "wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config), "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=stderr, preexec_fn=limit_files if file_limit else None)
        try:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
            assert line.startswith("smsgw listening on http://127.0.0.1:"), line
            yield process, line.split()[-1], log
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def metric(text: str, name: str) -> str:
    return next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))


def log_lines(log: Path) -> list[dict]:
    """Every line the process wrote to stderr, each of which must be a JSON object."""
    return [json.loads(line) for line in log.read_text().splitlines()]


async def raw_exchange(url: str, data: bytes, *, wait: float = 5.0) -> tuple[bytes, float]:
    """Send `data` on a new connection and read until the server closes it: (what it sent, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    try:
        writer.write(data)
        answer = await asyncio.wait_for(reader.read(), timeout=wait)
        return answer, time.monotonic() - started
    finally:
        writer.close()


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head, head
    return int(head.split()[1]), json.loads(body)


async def signed_mo(session: aiohttp.ClientSession, url: str, mo_id: str) -> int:
    body = mo_body(mo_id)
    headers = {"Content-Type": "application/json", "X-Smsgw-Signature": sign(SECRET, body)}
    async with session.post(f"{url}/carriers/generic/mo", data=body, headers=headers) as response:
        await response.read()
        return response.status


async def healthz(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(f"{url}/healthz") as response:
        return response.status, dict(response.headers)


# --- 1. slow clients ---------------------------------------------------------------------------

SLOW_OPENINGS = [
    b"",                                                         # connects, says nothing
    b"POST /carriers/generic/mo HT",                             # a partial request line
    MO_HEAD.encode() + b"X-Smsgw-Signature: 00",                 # partial headers
    MO_HEAD.encode() + b"Content-Length: 400\r\n\r\n" + b'{"id": "x", ' * 10,   # half a body
    MO_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\n10\r\n" + b"{" * 16 + b"\r\n",  # chunks, no end
]
SLOW_CLIENTS = 1100


def test_1100_slow_connections_under_ulimit_1024_leave_healthz_and_mos_answering(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = SLOW_CLIENTS + 200
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the test process needs {wanted} open files (hard limit {hard})")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    # Timeouts far away: the connections stay held all through the test, however slow the host.
    table = "[server]\nheader_timeout = 120\nbody_timeout = 120\nidle_timeout = 120\n"

    async def run():
        async with serving(tmp_path, table, file_limit=1024) as (process, url, log):
            host, port = url.removeprefix("http://").split(":")
            held: list[asyncio.StreamWriter] = []
            opening = asyncio.Semaphore(100)

            async def slow(n: int) -> None:
                async with opening:
                    _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=10)
                    writer.write(SLOW_OPENINGS[n % len(SLOW_OPENINGS)])
                    held.append(writer)

            await asyncio.gather(*(slow(n) for n in range(SLOW_CLIENTS)))
            assert len(held) == SLOW_CLIENTS
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                    for n in range(3):
                        assert (await healthz(session, url))[0] == 200
                        assert await signed_mo(session, url, f"slow-{n}") == 200
                    async with session.get(f"{url}/metrics") as response:
                        metrics = await response.text()
            finally:
                for writer in held:
                    writer.close()
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=10) == 0
        lines = log_lines(log)
        assert len(lines) < 40, [line["event"] for line in lines][:40]
        assert not any("out of system resource" in json.dumps(line) for line in lines)
        assert [line["max_connections"] for line in lines if line["event"] == "listening"] == [1024 - 128]
        # The longest-idle of the slow ones made room for the rest, /healthz and the MOs.
        assert float(metric(metrics, "smsgw_connections_open")) <= 1024 - 128
        assert float(metric(metrics, 'smsgw_connections_closed_total{reason="evicted"}')) >= SLOW_CLIENTS - 896

    asyncio.run(run())


def test_requests_read_too_slowly_get_408_and_idle_connections_are_closed(tmp_path):
    table = "[server]\nheader_timeout = 0.5\nbody_timeout = 0.8\nidle_timeout = 0.6\n"

    async def run():
        async with serving(tmp_path, table) as (process, url, log):
            host, port = url.removeprefix("http://").split(":")

            async def trickled_chunks() -> tuple[bytes, float]:
                """A chunked body that keeps coming, a chunk every 0.1 s, and never ends. Read by a
                protocol that keeps every byte received: the gateway closes with chunks still unread,
                so the kernel resets the connection, and a StreamReader would raise on the reset
                before returning the 408 already received."""
                received = bytearray()
                closed = asyncio.get_running_loop().create_future()

                class Collect(asyncio.Protocol):
                    def data_received(self, data: bytes) -> None:
                        received.extend(data)

                    def connection_lost(self, exc: Exception | None) -> None:
                        if not closed.done():
                            closed.set_result(None)

                transport, _ = await asyncio.get_running_loop().create_connection(Collect, host, int(port))
                started = time.monotonic()
                transport.write(MO_HEAD.encode() + b"X-Smsgw-Signature: 00\r\nTransfer-Encoding: chunked\r\n\r\n")
                try:
                    while not closed.done() and time.monotonic() - started < 5:
                        transport.write(b"1\r\n \r\n")
                        await asyncio.sleep(0.1)
                    await asyncio.wait_for(closed, timeout=1)
                    return bytes(received), time.monotonic() - started
                finally:
                    transport.close()

            partial_line, partial_headers, half_body, chunks, idle = await asyncio.gather(
                raw_exchange(url, b"POST /carriers/generic/mo HT"),
                raw_exchange(url, MO_HEAD.encode() + b"X-Smsgw-Signature: 00"),
                raw_exchange(url, MO_HEAD.encode() + b"X-Smsgw-Signature: 00\r\nContent-Length: 200\r\n\r\n{"),
                trickled_chunks(),
                raw_exchange(url, b""),
            )
            for answer, seconds in (partial_line, partial_headers):
                assert status_and_json(answer) == (408, {"error": "request headers not received within 0.5 s"})
                assert 0.4 < seconds < 5
            for answer, seconds in (half_body, chunks):
                assert status_and_json(answer) == (408, {"error": "request body not received within 0.8 s"})
                assert 0.7 < seconds < 5
            assert idle[0] == b"" and idle[1] < 5   # closed without a word

            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                assert await signed_mo(session, url, "after-the-slow-ones") == 200
                assert (await healthz(session, url))[0] == 200
                async with session.get(f"{url}/metrics") as response:
                    metrics = await response.text()
            assert 'smsgw_connections_closed_total{reason="header_timeout"} 2.0' in metrics
            assert 'smsgw_connections_closed_total{reason="body_timeout"} 2.0' in metrics
        assert all(isinstance(line, dict) for line in log_lines(log))

    asyncio.run(run())


def test_the_deadline_of_a_keep_alive_connections_next_request_runs_from_its_own_first_byte(tmp_path):
    """One timer per connection is moved along rather than re-armed (listener.py): the second
    request's header deadline must not be the first one's, nor be lost after an answer."""
    table = "[server]\nheader_timeout = 0.5\nbody_timeout = 0.8\nidle_timeout = 5\n"

    async def run():
        async with serving(tmp_path, table) as (process, url, log):
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                body = mo_body("keep-alive-1")
                writer.write(MO_HEAD.encode() + f"X-Smsgw-Signature: {sign(SECRET, body)}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                assert head.startswith(b"HTTP/1.1 200"), head
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                await asyncio.wait_for(reader.readexactly(length), timeout=5)
                await asyncio.sleep(0.3)   # the first request's header deadline would fall 0.2 s after the next write
                started = time.monotonic()
                writer.write(MO_HEAD.encode() + b"X-Smsgw-Signature: 00")
                answer = await asyncio.wait_for(reader.read(), timeout=5)
                seconds = time.monotonic() - started
            finally:
                writer.close()
            assert status_and_json(answer) == (408, {"error": "request headers not received within 0.5 s"})
            assert 0.45 < seconds < 5

    asyncio.run(run())


# --- 2. personal data in the HTTP parser's refusals ------------------------------------------

def test_malformed_requests_leave_no_phone_or_card_in_the_logs_or_the_answer(tmp_path):
    malformed = [
        f"POST /carriers/generic/mo?from={OWNER}&card={CARD} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {OWNER}{CARD}\r\n\r\n",
        f"P@ST /carriers/generic/mo?text=BH+QT+{SSN}+{CARD} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"{MO_HEAD}Transfer-Encoding: chunked\r\n\r\n{OWNER}{CARD}\r\n",
        f"{MO_HEAD}X-Phone: {OWNER} \x01 {CARD}\r\n\r\n",
        f"GET /carriers/generic/mo?from={OWNER}&card={CARD}{'x' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",
    ]

    async def run():
        async with serving(tmp_path) as (process, url, log):
            for request in malformed:
                answer, _ = await raw_exchange(url, request.encode())
                status, body = status_and_json(answer)
                assert status == 400 and body["error"].startswith("bad request: "), (request[:40], body)
                assert OWNER.encode() not in answer and CARD.encode() not in answer and SSN.encode() not in answer
            # A body whose chunks turn bad after the request reached the handler.
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(MO_HEAD.encode() + b"X-Smsgw-Signature: 00\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n")
            await asyncio.sleep(0.3)
            writer.write(f"zz{OWNER}{CARD}\r\n".encode())
            answer = await asyncio.wait_for(reader.read(), timeout=5)
            writer.close()
            assert status_and_json(answer)[0] == 400 and OWNER.encode() not in answer
            # A client gone halfway through its body.
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(MO_HEAD.encode() + f'X-Smsgw-Signature: 00\r\nContent-Length: 300\r\n\r\n{{"from": "{OWNER}"'
                         .encode())
            await asyncio.sleep(0.3)
            writer.close()
            await asyncio.sleep(0.3)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                assert (await healthz(session, url))[0] == 200
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=10) == 0
        logged = log.read_text()
        lines = log_lines(log)
        assert OWNER not in logged and CARD not in logged and SSN not in logged and "4010110129425" not in logged
        assert not any("Traceback" in json.dumps(line) for line in lines)
        refused = [line for line in lines if line["event"] == "request refused"]
        assert len(refused) >= len(malformed) + 1
        assert {line["status"] for line in refused} == {400}

    asyncio.run(run())


# --- 6. shutdown -------------------------------------------------------------------------------

def test_shutdown_answers_new_requests_503_and_does_not_wait_for_a_stalled_body(tmp_path):
    async def run():
        async with serving(tmp_path) as (process, url, log):
            host, port = url.removeprefix("http://").split(":")
            body = mo_body("under-way")
            head = (MO_HEAD + f"X-Smsgw-Signature: {sign(SECRET, body)}\r\nContent-Length: {len(body)}\r\n\r\n")
            # One request whose body keeps coming slowly, one whose body stopped halfway.
            active_reader, active = await asyncio.open_connection(host, int(port))
            active.write(head.encode() + body[:5])
            _, stalled = await asyncio.open_connection(host, int(port))
            stalled.write(MO_HEAD.encode() + b"X-Smsgw-Signature: 00\r\nContent-Length: 300\r\n\r\n{")
            await asyncio.sleep(0.2)

            checked = asyncio.Event()

            async def keep_uploading() -> None:
                """A byte every 0.2 s while the 503s are checked (the grace goes on), then the rest."""
                for sent in range(5, len(body)):
                    active.write(body[sent:sent + 1])
                    if not checked.is_set():
                        await asyncio.sleep(0.2)

            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            uploading = asyncio.create_task(keep_uploading())
            await asyncio.sleep(0.5)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                status, headers = await healthz(session, url)
                assert (status, headers.get("Retry-After")) == (503, "5")
                assert await signed_mo(session, url, "during-shutdown") == 503
            checked.set()
            await uploading
            answer = await asyncio.wait_for(active_reader.read(), timeout=5)
            assert int(answer.split()[1]) in (200, 503)   # answered, not dropped
            assert await asyncio.wait_for(process.wait(), timeout=5) == 0
            assert time.monotonic() - signalled < 8   # not the 30 s grace: only the stalled body was left
            stalled.close()
            active.close()
        assert all(isinstance(line, dict) for line in log_lines(log))

    asyncio.run(run())
