"""The operator console over HTTP (CONTRACT §9), on both backends: login, sessions, CSRF, the
lockout, roles enforced by the server, masking, the audit log, the simulator's test traffic.

A real gateway app on 127.0.0.1 (aiohttp's test server) over a real store; citizens' MOs come in
through the carrier webhook like real traffic. The browser tests are in test_console_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestClient, TestServer

from smsgw.config import parse_config
from smsgw.console.auth import LOCK_AFTER, hash_password
from smsgw.console.overview import current_month
from smsgw.gateway import create_app
from smsgw.ledger import month_bounds
from smsgw.reports import understanding
from smsgw.store import open_console, open_reports

from test_gateway import OWNER, SSN, make_records

PASSWORD = "mat-khau-dai-1"
NAME = "Nguyen Van A"
ACCOUNTS = {"ana": "admin", "sam": "staff", "vic": "viewer", "lou": "staff"}   # lou: for the lockout
CARRIERS = {"open": {"auth": "none", "mode": "sync"}}
NO_LIMITS = {"lookups_per_hour": 0, "repeat_limit": 0}


async def _prepare(db: str) -> None:
    await make_records(db)
    store = await open_console(db)
    try:
        for name, role in ACCOUNTS.items():
            assert await store.add_account(name, role, hash_password(PASSWORD), now=time.time())
    finally:
        await store.close()


@pytest.fixture
def console_db(db: str) -> str:
    """`--db` with the reference records and one account of each role (password PASSWORD)."""
    asyncio.run(_prepare(db))
    return db


@asynccontextmanager
async def gateway(db: str, **tables):
    config = parse_config({"carriers": CARRIERS, "protection": NO_LIMITS, **tables})
    async with TestClient(TestServer(create_app(config, db_path=db), host="127.0.0.1", port=0)) as client:
        yield client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def login(client: TestClient, name: str, password: str = PASSWORD):
    """A login as a new visitor (the client's cookies cleared first)."""
    client.session.cookie_jar.clear()
    page = await client.get("/console/login")
    return await client.post("/console/login", data={"csrf": csrf_of(await page.text()), "name": name,
                                                     "password": password, "next": "/console/"},
                             allow_redirects=False)


async def logged_in(client: TestClient, name: str) -> str:
    """Log `name` in; the CSRF token of the session (read from a page's form)."""
    response = await login(client, name)
    assert response.status == 303, await response.text()
    return csrf_of(await (await client.get("/console/messages")).text())


async def mo(client: TestClient, carrier_id: str, text: str, sender: str = OWNER) -> dict:
    response = await client.post("/carriers/open/mo", data=json.dumps(
        {"id": carrier_id, "from": sender, "to": "8079", "text": text}), headers={"Content-Type": "application/json"})
    assert response.status == 200
    return await response.json()


def run(coroutine):
    return asyncio.run(coroutine)


def test_login_gives_an_httponly_strict_cookie_and_logout_ends_the_session(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            bare = await client.get("/console", allow_redirects=False)
            assert bare.status == 303 and bare.headers["Location"] == "/console/"
            first = await client.get("/console/", allow_redirects=False)
            assert first.status == 303 and first.headers["Location"].startswith("/console/login")
            response = await login(client, "sam")
            assert response.status == 303 and response.headers["Location"] == "/console/"
            cookie = next(value for value in response.headers.getall("Set-Cookie") if value.startswith("smsgw_console="))
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
            home = await client.get("/console/")
            assert home.status == 200 and "Tổng quan" in await home.text()
            assert "default-src 'none'" in home.headers["Content-Security-Policy"]
            token = csrf_of(await home.text())
            out = await client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
            assert out.status == 303
            again = await client.get("/console/", allow_redirects=False)
            assert again.status == 303

    run(scenario())


def test_the_cookie_is_secure_behind_https(console_db):
    async def scenario():
        async with gateway(console_db, console={"https": True}) as client:
            page = await client.get("/console/login")
            login_cookie = page.cookies["smsgw_console_login"]
            assert login_cookie["secure"] and login_cookie["httponly"] and login_cookie["samesite"] == "Strict"
            client.session.cookie_jar.clear()   # a Secure cookie is not sent back over http: send it by hand
            response = await client.post("/console/login", allow_redirects=False,
                                         headers={"Cookie": f"smsgw_console_login={login_cookie.value}"},
                                         data={"csrf": csrf_of(await page.text()), "name": "sam", "password": PASSWORD})
            assert response.status == 303
            cookie = next(value for value in response.headers.getall("Set-Cookie") if value.startswith("smsgw_console="))
            assert "Secure" in cookie and "HttpOnly" in cookie

    run(scenario())


def test_a_post_without_the_csrf_token_is_refused(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            page = await client.get("/console/login")
            assert csrf_of(await page.text())
            no_token = await client.post("/console/login", data={"name": "sam", "password": PASSWORD},
                                         allow_redirects=False)
            assert no_token.status == 403
            token = await logged_in(client, "sam")
            form = {"carrier": "open", "phone": OWNER, "text": "BH HD"}
            assert (await client.post("/console/simulator", data=form)).status == 403
            assert (await client.post("/console/simulator", data={**form, "csrf": token[:-1] + "x"})).status == 403
            assert (await client.post("/console/simulator", data={**form, "csrf": token})).status == 200

    run(scenario())


def test_five_failed_logins_lock_the_account_for_fifteen_minutes(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            for attempt in range(1, LOCK_AFTER):
                response = await login(client, "sam", "wrong password!")
                assert response.status == 401 and "Sai tên tài khoản hoặc mật khẩu" in await response.text()
            fifth = await login(client, "sam", "wrong password!")
            assert fifth.status == 403 and "bị khoá" in await fifth.text()
            sixth = await login(client, "sam")   # the right password: still locked
            assert sixth.status == 403 and "bị khoá" in await sixth.text()
            other = await login(client, "ana")   # another account is not locked
            assert other.status == 303
        store = await open_console(console_db)
        try:
            account = await store.account("sam")
            assert account.locked_until == pytest.approx(time.time() + 15 * 60, abs=30)
            actions = [entry.action for entry in await store.audit_log()]
            assert actions.count("login_failed") == LOCK_AFTER - 1 and "login_locked" in actions
            await store.login_failed("sam", now=time.time(), limit=LOCK_AFTER, lock_seconds=900)
        finally:
            await store.close()

    run(scenario())


def test_an_admin_unlocks_an_account(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            for _ in range(LOCK_AFTER):
                await login(client, "vic", "wrong password!")
            assert (await login(client, "vic")).status == 403
            token = await logged_in(client, "ana")
            done = await client.post("/console/accounts", data={"csrf": token, "action": "unlock", "name": "vic"},
                                     allow_redirects=False)
            assert done.status == 303
            assert (await login(client, "vic")).status == 303

    run(scenario())


@pytest.mark.parametrize("name, method, path, form", [
    ("vic", "post", "/console/simulator", {"carrier": "open", "phone": OWNER, "text": "BH HD"}),
    ("vic", "get", "/console/simulator", None),
    ("vic", "get", "/console/accounts", None),
    ("sam", "get", "/console/accounts", None),
    ("sam", "get", "/console/audit", None),
    ("sam", "post", "/console/billing/export", {"month": "2026-01"}),
    ("sam", "post", "/console/accounts", {"action": "add", "name": "eve", "role": "admin", "password": PASSWORD}),
    ("sam", "post", "/console/messages/mo/x/reveal", {}),
])
def test_roles_are_enforced_by_the_server(console_db, name, method, path, form):
    async def scenario():
        async with gateway(console_db) as client:
            token = await logged_in(client, name)
            if method == "get":
                response = await client.get(path)
            else:
                response = await client.post(path, data={**form, "csrf": token})
            assert response.status == 403
            assert "Vai trò của bạn không được làm việc này" in await response.text()
        store = await open_console(console_db)
        try:
            assert await store.account("eve") is None
        finally:
            await store.close()

    run(scenario())


def test_a_viewer_never_sees_a_full_number_a_bhxh_number_or_a_name(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            await mo(client, "c1", f"BH QT {SSN}")
            await mo(client, "c2", f"BH QT {SSN} 2016 2017")
            await mo(client, "c3", "BH XYZ 0912345678")
            token = await logged_in(client, "vic")
            bodies = []
            for path in ("/console/", "/console/messages", "/console/understanding", "/console/understanding?days=1",
                         "/console/billing", "/console/carriers"):
                response = await client.get(path)
                assert response.status == 200, path
                bodies.append(await response.text())
            for kind, query in (("phone", OWNER), ("phone", "0912345678"), ("carrier_id", "c1")):
                response = await client.post("/console/messages", data={"csrf": token, "kind": kind, "q": query})
                assert response.status == 200
                bodies.append(await response.text())
            conversation = await client.post("/console/messages", data={"csrf": token, "kind": "phone", "q": OWNER})
            mo_id = re.search(r"/console/messages/mo/([^\"]+)\"", await conversation.text()).group(1)
            page = await client.get(f"/console/messages/mo/{mo_id}")
            bodies.append(await page.text())
            assert "8491234****" in bodies[-1] and "(nội dung ẩn với vai trò Xem)" in bodies[-1]
            for body in bodies:
                for secret in (OWNER, "912345678", SSN, NAME, "Nguyen"):
                    assert secret not in body

    run(scenario())


def test_staff_see_texts_with_numbers_masked_and_an_admin_reveals_a_number_audited(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            stored = await mo(client, "c1", f"BH QT {SSN}")
            await logged_in(client, "sam")
            staff_page = await (await client.get(f"/console/messages/mo/{stored['mo_id']}")).text()
            assert f"BH QT {SSN}" in staff_page and OWNER not in staff_page and "8491234****" in staff_page
            assert 'id="reveal"' not in staff_page
            token = await logged_in(client, "ana")
            admin_page = await (await client.get(f"/console/messages/mo/{stored['mo_id']}")).text()
            assert OWNER not in admin_page and 'id="reveal"' in admin_page
            revealed = await client.post(f"/console/messages/mo/{stored['mo_id']}/reveal", data={"csrf": token})
            assert revealed.status == 200 and OWNER in await revealed.text()
            audit = await (await client.get("/console/audit")).text()
            assert "reveal" in audit and "8491234****" in audit and OWNER not in audit

    run(scenario())


def test_the_simulator_takes_the_real_path_as_test_traffic_never_billed_nor_counted(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            await mo(client, "real-1", f"BH QT {SSN}")   # one real, charged lookup
            token = await logged_in(client, "sam")
            response = await client.post("/console/simulator", data={
                "csrf": token, "carrier": "open", "phone": "0912345678", "text": f"BH QT {SSN}"})
            page = await response.text()
            assert response.status == 200
            body = json.loads(re.search(r'<pre id="carrier-body">(.*?)</pre>', page, re.S).group(1).replace("&#34;", '"'))
            assert body["replies"][0]["message_type"] == 1 and "BHXH: 02 nam 00 thang" in body["replies"][0]["text"]
            assert "02 nam 00 thang" in page and "gsm7 · 1 tin SMS" in page
            error = await client.post("/console/simulator", data={"csrf": token, "carrier": "open",
                                                                  "phone": OWNER, "text": "BH QQ"})
            assert "unknown_command" in await error.text()
            conversation = await client.post("/console/messages", data={"csrf": token, "kind": "phone", "q": OWNER})
            assert (await conversation.text()).count('class="badge test"') == 4   # 2 test MOs and their replies
            billing = await (await client.get("/console/billing")).text()
            assert re.search(r'id="billing-total">1\.000<', billing)
            overview = await (await client.get("/console/")).text()
            assert 'id="share">100,0%' in overview

    run(scenario())
    reader = open_reports(console_db)   # the CLI's reports and ledger leave the test traffic out too
    try:
        start, end = month_bounds(current_month(time.time()))
        assert sum(amount for *_, amount in reader.billing_totals_between(start, end)) == 1000
        assert len(list(reader.billing_rows_between(start, end))) == 1
        report = understanding(reader)
        assert report.understood == 1 and not report.errors
    finally:
        reader.close()


def test_bad_simulator_input_is_a_clear_400(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            token = await logged_in(client, "sam")
            for form, reason in (({"carrier": "nope", "phone": OWNER, "text": "BH"}, "Hãy chọn một nhà mạng"),
                                 ({"carrier": "open", "phone": "12ab", "text": "BH"}, "Số điện thoại không hợp lệ")):
                response = await client.post("/console/simulator", data={**form, "csrf": token})
                assert response.status == 400 and reason in await response.text()

    run(scenario())


def test_an_admin_exports_the_billing_month_as_csv_audited(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            await mo(client, "c1", f"BH QT {SSN}")
            token = await logged_in(client, "ana")
            month = current_month(time.time())
            response = await client.post("/console/billing/export", data={"csrf": token, "month": month})
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
            lines = (await response.text()).splitlines()
            assert lines[0].startswith("time,carrier,mo_id") and len(lines) == 2 and OWNER not in lines[1]
            bad = await client.post("/console/billing/export", data={"csrf": token, "month": "2026-13"})
            assert bad.status == 400
            audit = await (await client.get("/console/audit")).text()
            assert f"xuất bảng cước tháng {month} (1 dòng)" in audit

    run(scenario())


def test_admins_manage_accounts_and_cannot_remove_themselves(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            token = await logged_in(client, "ana")
            added = await client.post("/console/accounts", data={"csrf": token, "action": "add", "name": "eve",
                                                                 "role": "viewer", "password": PASSWORD},
                                      allow_redirects=False)
            assert added.status == 303
            again = await client.post("/console/accounts", data={"csrf": token, "action": "add", "name": "eve",
                                                                 "role": "viewer", "password": PASSWORD})
            assert again.status == 409
            short = await client.post("/console/accounts", data={"csrf": token, "action": "add", "name": "joe",
                                                                 "role": "viewer", "password": "short"})
            assert short.status == 400 and "ít nhất 10 ký tự" in await short.text()
            self_removal = await client.post("/console/accounts", data={"csrf": token, "action": "remove", "name": "ana"})
            assert self_removal.status == 400
            promoted = await client.post("/console/accounts", data={"csrf": token, "action": "role", "name": "eve",
                                                                    "role": "staff"}, allow_redirects=False)
            assert promoted.status == 303
            audit = await (await client.get("/console/audit")).text()
            assert "thêm tài khoản eve (viewer)" in audit and "đổi vai trò của eve thành staff" in audit
            await logged_in(client, "eve")
            assert (await client.get("/console/simulator")).status == 200   # staff now, at once

    run(scenario())


def test_a_removed_account_loses_its_session_at_once(console_db):
    async def scenario():
        async with gateway(console_db) as viewer, gateway(console_db) as admin:
            await logged_in(viewer, "vic")
            token = await logged_in(admin, "ana")
            await admin.post("/console/accounts", data={"csrf": token, "action": "remove", "name": "vic"})
            assert (await viewer.get("/console/", allow_redirects=False)).status == 303

    run(scenario())


def test_pages_count_real_traffic(console_db):
    async def scenario():
        async with gateway(console_db) as client:
            await mo(client, "c1", f"BH QT {SSN}")
            await mo(client, "c2", "BH QT 12345")
            await logged_in(client, "sam")
            overview = await (await client.get("/console/")).text()
            assert 'id="share">50,0%' in overview and "<svg" in overview
            understanding_page = await (await client.get("/console/understanding")).text()
            assert 'id="understood-share">50,0%' in understanding_page and "bad_id" in understanding_page
            assert "BH QT 99999" in understanding_page
            carriers = await (await client.get("/console/carriers")).text()
            assert 'id="carrier-open"' in carriers
            bad = await client.get("/console/understanding?days=5")
            assert bad.status == 400

    run(scenario())


def test_console_disabled_by_config(console_db):
    async def scenario():
        async with gateway(console_db, console={"enabled": False}) as client:
            assert (await client.get("/console/login")).status == 404

    run(scenario())


def test_users_add_reads_the_password_from_stdin(tmp_path):
    db = tmp_path / "records.db"
    asyncio.run(make_records(db))
    smsgw = [sys.executable, "-m", "smsgw"]
    done = subprocess.run([*smsgw, "users", "add", "ana", "--role", "admin", "--db", str(db)],
                          input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([*smsgw, "users", "add", "ana", "--role", "staff", "--db", str(db)],
                           input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and again.stderr == "smsgw: NAME 'ana': an account of that name exists already\n"
    short = subprocess.run([*smsgw, "users", "add", "bob", "--role", "staff", "--db", str(db)],
                           input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and short.stderr.startswith("smsgw: password:")
    listed = subprocess.run([*smsgw, "users", "list", "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert listed.stdout == "ana\tadmin\n"

    async def check() -> None:
        store = await open_console(str(db))
        try:
            account = await store.account("ana")
            assert account.password_hash.startswith("$argon2id$") and PASSWORD not in account.password_hash
        finally:
            await store.close()

    asyncio.run(check())


def test_the_queue_of_a_carrier_that_does_not_take_its_mts_shows_on_the_overview_and_carriers(console_db):
    async def scenario():
        late = {"auth": "none", "mode": "async", "mt_url": "http://127.0.0.1:9/mt", "tps": 5}
        carriers = {**CARRIERS, "late": late, "later": late}
        config = parse_config({"carriers": carriers, "protection": NO_LIMITS})
        app = create_app(config, db_path=console_db)
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            for carrier in ("later", "late"):
                response = await client.post(f"/carriers/{carrier}/mo", data=json.dumps(
                    {"id": "q1", "from": OWNER, "to": "8079", "text": "BH"}), headers={"Content-Type": "application/json"})
                assert response.status == 202   # its reply waits: nothing listens at the carrier's mt_url
            await logged_in(client, "vic")
            overview = await (await client.get("/console/")).text()
            assert re.search(r'<table id="queues">.*<td>late</td><td class="num">1</td>.*<td>later</td>', overview, re.S)
            carriers_page = await (await client.get("/console/carriers")).text()
            assert re.search(r'id="carrier-late".*Đang chờ gửi: 1', carriers_page, re.S)
            assert "giới hạn 5 (tps)" in carriers_page

    run(scenario())


def test_days_that_are_over_are_counted_once_today_and_unsettled_days_every_time():
    from smsgw.console.daily import DailyCounts, day_number, day_start

    now = [day_start(20_000) + 3600.0]   # 01:00 Vietnam time on day 20,000
    daily = DailyCounts(clock=lambda: now[0])
    asked: list[int] = []

    async def fetch(since: float, until: float) -> list:
        assert until - since == 86400
        asked.append(day_number(since))
        return [("rows of", day_number(since))]

    async def scenario() -> None:
        rows = await daily.days("mt", 19_996, 20_005, fetch, settles=2)   # days after today are not asked
        assert sorted(rows) == list(range(19_996, 20_001)) and rows[19_999] == [("rows of", 19_999)]
        assert asked == list(range(19_996, 20_001))
        asked.clear()
        await daily.days("mt", 19_996, 20_000, fetch, settles=2)
        assert asked == [19_998, 19_999, 20_000]          # the two days before today may still change
        asked.clear()
        await daily.days("mo", 19_999, 20_000, fetch)
        await daily.days("mo", 19_999, 20_000, fetch)
        assert asked == [19_999, 20_000, 20_000]          # another kind; yesterday kept, today asked again
        now[0] += 86400                                   # a day later, yesterday is over too
        asked.clear()
        await daily.days("mo", 19_999, 20_001, fetch)
        assert asked == [20_000, 20_001]

    asyncio.run(scenario())


def test_the_console_table_in_the_config_and_the_environment():
    from smsgw.config_check import render_toml
    from smsgw.settings import ConfigError

    config = parse_config({"console": {"https": True}}, environ={"SMSGW_CONSOLE__ENABLED": "false"})
    assert (config.console.enabled, config.console.https, config.console.session_hours) == (False, True, 12.0)
    assert "[console]\nenabled = false\nhttps = true\nsession_hours = 12.0" in render_toml(config)
    with pytest.raises(ConfigError, match="console.session_hours: must be positive"):
        parse_config({"console": {"session_hours": 0}})
