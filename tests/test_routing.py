"""Keyword routing on the shared short code, end to end through the HTTP gateway."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from test_gateway import OWNER, make_records, mo_body, post_mo

from smsgw.config import ConfigError, parse_config
from smsgw.gateway import create_app


@asynccontextmanager
async def other_services():
    """A local HTTP service with a good, a slow, a failing and a silent endpoint."""
    seen: list[dict] = []

    async def good(request: web.Request) -> web.Response:
        form = dict(await request.post())
        seen.append(form)
        return web.Response(text=f"Kết quả xổ số cho {form['text'].split(' ', 1)[1]}: 12345", charset="utf-8")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="too late")

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def silent(request: web.Request) -> web.Response:
        return web.Response(text="  \n")

    app = web.Application()
    app.router.add_post("/good", good)
    app.router.add_post("/slow", slow)
    app.router.add_post("/failing", failing)
    app.router.add_post("/silent", silent)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", seen
    finally:
        await server.close()


@asynccontextmanager
async def routed_gateway(tmp_path, base_url: str):
    db = tmp_path / "records.db"
    await make_records(db)
    config = parse_config({
        "carriers": {"open": {"auth": "none", "mode": "sync"}},
        "routes": {
            "XS": {"url": f"{base_url}/good"},
            "SLOW": {"url": f"{base_url}/slow", "timeout": 0.3},
            "DOWN": {"url": f"{base_url}/failing"},
            "EMPTY": {"url": f"{base_url}/silent"},
            "KM": {"text": "Chương trình khuyến mãi đã kết thúc."},
        },
    })
    async with TestClient(TestServer(create_app(config, db_path=str(db)), host="127.0.0.1", port=0)) as client:
        yield client


async def ask(client, mo_id: str, text: str):
    status, answer = await post_mo(client, mo_body(mo_id, text), carrier="open", secret=None)
    assert status == 200, answer
    (reply,) = answer["replies"]
    return reply


def test_routed_keywords_reach_their_service_and_bh_stays_ours(tmp_path):
    async def run():
        async with other_services() as (base_url, seen), routed_gateway(tmp_path, base_url) as client:
            reply = await ask(client, "r1", "xs mb")
            assert reply["text"] == "Ket qua xo so cho mb: 12345"   # folded to GSM-7 by default
            assert reply["message_type"] == 1
            assert seen == [{"from": OWNER, "to": "8079", "text": "xs mb", "keyword": "XS"}]

            fixed = await ask(client, "r2", "KM")
            assert (fixed["text"], fixed["message_type"]) == ("Chuong trinh khuyen mai da ket thuc.", 0)

            ours = await ask(client, "r3", "BH QT 0110129425")
            assert "BHXH" in ours["text"] and ours["message_type"] == 1
            unrouted = await ask(client, "r4", "ZZ 123")
            assert unrouted["message_type"] == 21 and "BH QT" in unrouted["text"]
            assert len(seen) == 1

    asyncio.run(run())


@pytest.mark.parametrize("keyword", ["SLOW", "DOWN", "EMPTY"])
def test_a_slow_or_failing_service_gets_a_polite_refunded_reply(tmp_path, keyword):
    async def run():
        async with other_services() as (base_url, _), routed_gateway(tmp_path, base_url) as client:
            reply = await ask(client, "b1", f"{keyword} abc")
            assert reply["message_type"] == 22
            assert f"Dich vu {keyword} dang ban" in reply["text"] and "khong bi tinh phi" in reply["text"]
            # the gateway still answers its own keyword right after
            assert (await ask(client, "b2", "BH"))["message_type"] == 0

    asyncio.run(run())


@pytest.mark.parametrize("routes, key", [
    ({"BH": {"text": "x"}}, "routes.BH"),
    ({"hd": {"text": "x"}}, "routes.hd"),
    ({"XS": {}}, "routes.XS"),
    ({"XS": {"text": "a", "url": "http://x"}}, "routes.XS"),
    ({"XS": {"url": "ftp://x"}}, "routes.XS.url"),
    ({"XS": {"url": "http://x", "timeout": 0}}, "routes.XS.timeout"),
    ({"XS": {"text": "a", "message_type": 5}}, "routes.XS.message_type"),
    ({"X-S": {"text": "a"}}, "routes.X-S"),
    ({"XS": {"text": "a", "adress": "b"}}, "routes.XS.adress"),
])
def test_routes_are_validated_at_start(routes, key):
    with pytest.raises(ConfigError, match=f"^<config>: {key}:"):
        parse_config({"routes": routes})
