"""The replay client (smsgw/client.py) against a real HTTP server on 127.0.0.1: what it sends, what it reads."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from smsgw.adapters.generic import TIMESTAMP_HEADER, GenericSettings
from smsgw.carrier import load_adapter
from smsgw.client import replay_message
from smsgw.errors import ReplayError, RequestError
from smsgw.wire import CarrierRequest

SECRET = "client-secret"


def carrier():
    """The generic carrier as a gateway checks it: signed, with a fresh timestamp required."""
    return load_adapter(GenericSettings(name="generic", secret=SECRET, require_timestamp=True), shortcode="8079")


def run(answer: web.Response | None = None):
    """Post one MO with the client to a real server that checks it as the gateway would; (what the
    server saw, what the client returned or raised). `answer` replaces the server's sync reply."""
    seen = []

    async def mo(request: web.Request) -> web.Response:
        body = await request.read()
        wire = CarrierRequest(request.headers, request.content_type, request.charset, body, method="POST",
                              target=request.raw_path, url=str(request.url), peer=request.remote)
        generic = carrier()
        try:
            generic.authenticate(wire)
            inbound = generic.parse_inbound(wire, received_at=datetime.now(timezone.utc))
        except RequestError as error:
            return web.json_response({"error": error.reason}, status=error.status)
        seen.append((request.path, inbound, int(request.headers[TIMESTAMP_HEADER])))
        return answer or web.json_response({"mo_id": "mo-1", "replies": [{"text": "Tra cuu", "segments": 1}]})

    async def main():
        app = web.Application()
        app.router.add_post("/carriers/{name}/mo", mo)
        async with TestServer(app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url("/"))
            try:
                got = await asyncio.wait_for(replay_message(session, url, "generic", SECRET, "84912345678",
                                                            "BH THẺ 0110129425", "replay-1", to="8080"), 10)
            except ReplayError as error:
                got = error
            return seen, got, url.rstrip("/")

    return asyncio.run(main())


def test_a_message_is_signed_with_the_current_time_and_sent_to_the_given_number():
    before = int(time.time())
    seen, replies, _ = run()
    [(path, inbound, stamped)] = seen   # the real adapter took the signature and its timestamp
    assert path == "/carriers/generic/mo"
    assert before <= stamped <= time.time()
    assert (inbound.carrier_id, inbound.sender, inbound.to, inbound.text) == (
        "replay-1", "84912345678", "8080", "BH THẺ 0110129425")
    assert replies == [{"text": "Tra cuu", "segments": 1}]


def test_a_refusal_is_reported_with_its_status_and_the_server_reason():
    _, got, url = run(web.json_response({"error": "wrong X-Smsgw-Signature"}, status=401))
    assert isinstance(got, ReplayError)
    assert str(got) == f"{url}/carriers/generic/mo: HTTP 401: wrong X-Smsgw-Signature"


@pytest.mark.parametrize("answer, says", [
    (web.Response(status=502, text="<html>bad gateway</html>"), "HTTP 502: <html>bad gateway</html>"),
    (web.json_response({"mo_id": "mo-1"}), "HTTP 200: no 'replies' list in the answer"),
    (web.json_response({"mo_id": "mo-1"}, status=202), "carrier 'generic' is in async mode; replay needs a sync carrier"),
])
def test_anything_but_a_sync_reply_is_a_replay_error_saying_what_came(answer, says):
    _, got, url = run(answer)
    assert isinstance(got, ReplayError) and str(got).startswith(f"{url}/carriers/generic/mo: ")
    assert str(got).endswith(says), str(got)


def test_an_unreachable_gateway_is_a_replay_error_naming_the_endpoint():
    async def main():
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ReplayError, match=r"^http://127\.0\.0\.1:9/carriers/generic/mo: "):
                await asyncio.wait_for(replay_message(session, "http://127.0.0.1:9", "generic", SECRET,
                                                      "84912345678", "BH", "replay-2"), 10)

    asyncio.run(main())

