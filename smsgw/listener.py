"""Client connections of `smsgw serve`: accepted up to a cap, each request read within deadlines.

A client cannot hold the gateway's connections or file descriptors (`[server]` in the config):

- a request's headers must arrive within `header_timeout` of its first byte, and its body within
  `body_timeout` of the headers; otherwise it gets a 408 `{"error": ...}` and the connection is
  closed. An idle keep-alive connection is closed after `idle_timeout` (aiohttp's keep-alive timer).
- at most `max_connections` are open, never more than the open-file limit less a reserve for the
  store, the MT sends and the process (`connection_cap`). At the cap, the least recently active
  connection that is not being answered (idle, or a request still being read) is closed to make
  room; when every one is being answered, accepting waits (the kernel's backlog holds the rest)
  until one closes. Nothing is accepted that has no descriptor for it, so asyncio never meets
  EMFILE; if the store or the MT sends use the reserve up, accepting pauses and one line a
  second says so.
- aiohttp's HTTP parser refusals answer `{"error": "bad request: <generic reason>"}` and log
  one line without the request's bytes (they hold phone numbers and card codes).
- on shutdown (`drain`) the requests under way are waited for, up to `shutdown_grace`, but not a
  stalled read: a request whose bytes stopped coming `STALLED_AFTER` seconds ago.

What closes connections is logged as one summary line a second at most (`connections closed`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from collections import Counter, OrderedDict
from typing import Any

from aiohttp import http_exceptions as bad
from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from .config import ServerConfig
from .descriptors import connection_cap
from .logs import get_logger
from .metrics import Metrics

STALLED_AFTER = 1.0       # s without a byte after which a request being read no longer holds shutdown
ACCEPT_BATCH = 64         # connections accepted per readiness of the listening socket
ACCEPT_RETRY = 0.2        # s before accepting again when no descriptor is left
DRAIN_POLL = 0.05
SUMMARY_EVERY = 1.0
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

log = get_logger(component="listener")

# aiohttp's messages quote the request's bytes: only these generic reasons reach the client and the logs.
_PARSE_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (bad.LineTooLong, "request line or header too long"),
    (bad.BadHttpMethod, "unknown method"),
    (bad.BadStatusLine, "malformed request line"),
    (bad.InvalidHeader, "malformed header"),
    (bad.InvalidURLError, "malformed target"),
    (bad.TransferEncodingError, "malformed chunked body"),
    (bad.ContentLengthError, "body shorter than its Content-Length"),
    (bad.ContentEncodingError, "body cannot be decoded"),
)


def parse_refusal(exc: BaseException) -> str:
    """The generic reason for aiohttp's parser refusing a request (never the request's bytes)."""
    for kind, reason in _PARSE_REASONS:
        if isinstance(exc, kind):
            return f"bad request: {reason}"
    return "bad request: malformed HTTP"


def _closing_response(status: int, phrase: str, error: str) -> bytes:
    body = json.dumps({"error": error}).encode()
    return (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


# What a connection waits for: a request, its headers, its body; nothing (READ: the request is read in full,
# and a connection stays READ once answered, as IDLE; a body still being read when the answer is sent
# stays BODY, aiohttp reading the rest within the body deadline).
IDLE, HEADERS, BODY, READ = range(4)


class Connection(RequestHandler):
    """aiohttp's handler of one connection, reading each request within the listener's deadlines."""

    __slots__ = ("listener", "phase", "last_data", "_body", "_deadline", "_deadline_at")

    def __init__(self, manager: web.Server, listener: Listener) -> None:
        super().__init__(manager, loop=listener.loop, keepalive_timeout=listener.limits.idle_timeout,
                         access_log=None)
        self.listener = listener
        self.phase = IDLE
        self.last_data = listener.loop.time()
        self._body: Any = None
        self._deadline: asyncio.TimerHandle | None = None   # the timer; may be due before _deadline_at
        self._deadline_at: float | None = None   # when the phase's deadline falls; None: none armed

    @property
    def working(self) -> bool:
        """A request is being answered (read in full, in the app's hands)."""
        return self._request_in_progress and self.phase != BODY

    def under_way(self, now: float) -> bool:
        """Answering a request, or reading one whose bytes keep coming."""
        return self.working or self.phase in (HEADERS, BODY) and now - self.last_data < STALLED_AFTER

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.listener.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._deadline is not None:   # not left in the loop's heap, holding the connection, until due
            self._deadline.cancel()
            self._deadline = None
        self.listener.lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        # aiohttp calls this with b"" after each request, to parse what it buffered (pipelined
        # requests): no byte came, no new request's deadline starts (taken for one, it armed
        # the header deadline of an answered request: a keep-alive connection got a 408
        # `header_timeout` after its last request, even with the next one on its way).
        if data:
            self.last_data = now
            self.listener.touched(self)
            if self.phase == IDLE or self.phase == READ:
                self.phase = HEADERS
                self._arm(now + self.listener.limits.header_timeout)
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:   # headers complete (or found bad): now the body
            message, body = self._messages[-1]
            if isinstance(message, _ErrInfo) and self.phase == BODY:
                self._refuse_body(message)
                return
            self._body = body
            self.phase = BODY
            self._arm(now + self.listener.limits.body_timeout)
        if self.phase == BODY and (self._body is None or self._body.is_eof()):
            self.phase = READ
            self._disarm()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's last resort: a parser refusal, or a client gone while its request was read."""
        if isinstance(exc, ConnectionError):
            raise exc   # nothing to answer; aiohttp drops the connection quietly
        if request.writer.output_size > 0:
            raise ConnectionResetError("response already started")
        if isinstance(exc, bad.HttpProcessingError):
            reason = parse_refusal(exc)
            self.listener.refused(reason, status)
        else:
            reason = "internal error"
            log.error("request failed", exc_info=exc)
        response = web.json_response({"error": reason}, status=status)
        response.force_close()
        return response

    def _refuse_body(self, error: Any) -> None:
        """The body being read turned out malformed (a bad chunk): its reader gets the error, and
        answers it (gateway._observe); aiohttp would answer it a second time, after the body's
        own deadline."""
        self._messages.pop()
        self._body.set_exception(error.exc)
        self._body.feed_eof()
        self.phase = READ
        self._disarm()
        self.close()

    def evict(self) -> None:
        self.force_close()

    # The deadlines are armed twice and disarmed once per request. Instead of a timer each time
    # (call_at and cancel: the cancelled handles pile up in the loop's heap until they are due),
    # one timer per connection stays armed and, when it fires early, moves to the deadline now
    # in force: a new timer only when a deadline falls before the one armed, or after it fired.
    # Measured (an aiohttp app answering a constant, under wrk, interleaved): the handler cost
    # 10-14 us of CPU a request over aiohttp's own server with a timer per deadline, 4 us with
    # this one (BENCHMARKS.md, check after issues 13-15).

    def _arm(self, when: float) -> None:
        self._deadline_at = when
        if self._deadline is not None:
            if self._deadline.when() <= when:
                return
            self._deadline.cancel()
        self._deadline = self._loop.call_at(when, self._due)

    def _disarm(self) -> None:
        self._deadline_at = None   # the timer, if any, finds nothing to do and is not armed again

    def _due(self) -> None:
        self._deadline = None
        when = self._deadline_at
        if when is None:
            return
        if when > self._loop.time():
            self._deadline = self._loop.call_at(when, self._due)
            return
        self._deadline_at = None
        self._expired()

    def _expired(self) -> None:
        limits = self.listener.limits
        if self.phase == HEADERS:
            reason, error = "header_timeout", f"request headers not received within {limits.header_timeout:g} s"
            answerable = not self._request_in_progress
        elif self.phase == BODY:
            reason, error = "body_timeout", f"request body not received within {limits.body_timeout:g} s"
            request = self._current_request
            answerable = request is not None and request.writer.output_size == 0
        else:
            return
        self.listener.closed_by_us(reason)
        if answerable and self.transport is not None:
            self.transport.write(_closing_response(408, "Request Timeout", error))
        self.force_close()


class Listener:
    """The listening sockets and the client connections of one `smsgw serve` process."""

    def __init__(self, server: web.Server, limits: ServerConfig, *, file_limit: int,
                 metrics: Metrics | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = server
        self.limits = limits
        self.cap = connection_cap(limits.max_connections, file_limit)
        self.metrics = metrics
        # Least recently active first: the first one not being answered is the one to close at the cap.
        self.connections: OrderedDict[Connection, None] = OrderedDict()
        self._open = 0   # sockets accepted and not closed yet, connected or still connecting
        self._sockets: list[socket.socket] = []
        self._accepting = False
        self._closed = False
        self._summary: Counter[str] = Counter()
        self._summary_due: asyncio.TimerHandle | None = None
        if metrics is not None:
            metrics.track_connections_open(lambda: len(self.connections))

    def start(self, host: str, port: int, *, backlog: int, reuse_port: bool) -> int:
        """Listen on every address of `host`; the port bound (a free one for 0)."""
        addresses = dict.fromkeys((family, address) for family, _, _, _, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))
        for family, address in addresses:
            sock = socket.create_server(address[:2], family=family, backlog=backlog, reuse_port=reuse_port)
            sock.setblocking(False)
            self._sockets.append(sock)
        self._resume()
        return self._sockets[0].getsockname()[1]

    async def drain(self, grace: float) -> None:
        """Wait, up to `grace` seconds, until no request is under way but stalled reads."""
        deadline = self.loop.time() + grace
        while (now := self.loop.time()) < deadline and any(c.under_way(now) for c in self.connections):
            await asyncio.sleep(DRAIN_POLL)

    def close(self) -> None:
        """Stop accepting; close every connection but those whose request is being answered."""
        self._closed = True
        self._pause()
        for sock in self._sockets:
            sock.close()
        for connection in list(self.connections):
            if not connection.working:
                connection.force_close()
        if self._summary_due is not None:
            self._summary_due.cancel()
            self._log_summary()

    # --- connections' events ---------------------------------------------------------------

    def opened(self, connection: Connection) -> None:
        self.connections[connection] = None

    def touched(self, connection: Connection) -> None:
        self.connections.move_to_end(connection)

    def lost(self, connection: Connection) -> None:
        if self.connections.pop(connection, False) is None:
            self._open -= 1
            self._resume()

    def closed_by_us(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.connections_closed.labels(reason).inc()
        self._note(reason)

    def refused(self, reason: str, status: int) -> None:
        if self.metrics is not None:
            self.metrics.parse_errors.labels("unknown", "malformed_http").inc()
        log.info("request refused", status=status, kind="malformed_http", reason=reason)

    # --- accepting -------------------------------------------------------------------------

    def _resume(self) -> None:
        if self._accepting or self._closed:
            return
        self._accepting = True
        for sock in self._sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self._sockets:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            if self._open >= self.cap:
                self._make_room()
                return
            try:
                client, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                if self.metrics is not None:
                    self.metrics.accept_failures.inc()
                self._note(f"not_accepted_{errno.errorcode[exc.errno]}")
                self._pause()
                self.loop.call_later(ACCEPT_RETRY, self._resume)
                return
            client.setblocking(False)
            self._open += 1
            self.loop.create_task(self._connect(client))

    async def _connect(self, client: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: Connection(self.server, self), client)
        except OSError:
            if client.fileno() != -1:   # no transport took it: its descriptor is still ours
                client.close()
                self._open -= 1
                self._resume()

    def _make_room(self) -> None:
        """At the cap: close the least recently active connection not being answered, and wait
        for it to go (`lost` resumes accepting); with none, wait for any to go."""
        self._pause()
        victim = next((c for c in self.connections if not c.working and c.transport is not None), None)
        if victim is not None:
            self.closed_by_us("evicted")
            victim.evict()

    def _note(self, reason: str) -> None:
        self._summary[reason] += 1
        if self._summary_due is None:
            self._summary_due = self.loop.call_later(SUMMARY_EVERY, self._log_summary)

    def _log_summary(self) -> None:
        self._summary_due = None
        summary, self._summary = dict(self._summary), Counter()
        log.warning("connection limits", open=len(self.connections), cap=self.cap, **summary)
