"""The operator console in a real browser (CONTRACT §9, issue 19): Debian's headless chromium,
driven through chromium-driver by selenium, against a real `smsgw serve` subprocess on 127.0.0.1
(one per module, over an SQLite store with the reference records and one account per role).

Each test saves a screenshot of its page under its tmp_path (a CI artefact for reviewers). The
tests skip, saying so, only when chromium or chromedriver is not installed (.ci/run installs both).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from smsgw.answers import QuestionReply
from smsgw.faq_store import import_faq, load_faq
from smsgw.gsm import measure
from smsgw.replies import reply

from test_console import ACCOUNTS, PASSWORD, _prepare
from test_gateway import OWNER, SSN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"),
]
WAIT = 15.0   # seconds for a page or an element
ROOT = Path(__file__).resolve().parent.parent


class Sink:
    """A carrier's MT endpoint on 127.0.0.1, in a thread: the JSON bodies it received."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mt"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int) -> list[dict]:
        deadline = time.monotonic() + WAIT
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"the carrier received {len(self.received)} MTs, not {count}"
            time.sleep(0.05)
        return self.received


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    carrier = Sink()
    yield carrier
    carrier.server.shutdown()
    carrier.server.server_close()


@pytest.fixture(scope="module")
def served_db(tmp_path_factory) -> Path:
    """The records database of `served`."""
    return tmp_path_factory.mktemp("console-serve") / "records.db"


@pytest.fixture(scope="module")
def served(served_db, sink) -> Iterator[str]:
    """A real `smsgw serve` on 127.0.0.1 (carriers `open`, sync, and `net`, async to the sink); its base URL."""
    root, db = served_db.parent, served_db
    asyncio.run(_prepare(str(db)))
    asyncio.run(import_faq(ROOT / "fixtures" / "faq" / "faq.csv", str(db)))   # staff see its suggestions
    config = root / "smsgw.toml"
    config.write_text('[carriers.open]\nauth = "none"\nmode = "sync"\n'
                      f'[carriers.net]\nauth = "none"\nmode = "async"\nmt_url = "{sink.url}"\n'
                      '[protection]\nlookups_per_hour = 0\nrepeat_limit = 0\n', encoding="utf-8")
    log = (root / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config),
                                "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        listening = process.stdout.readline()
        assert listening.startswith("smsgw listening on http://127.0.0.1:"), listening
        base = listening.split()[-1]
        with urllib.request.urlopen(f"{base}/healthz", timeout=WAIT) as response:
            assert response.status == 200
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        log.close()


@pytest.fixture
def browser(tmp_path: Path, request: pytest.FixtureRequest):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--lang=vi", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.save_screenshot(str(tmp_path / f"{request.node.name}.png"))
        driver.quit()


def wait_for(driver, css: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def log_in(driver, base: str, name: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base}/console/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def status_of_post(driver, path: str, fields: dict[str, str]) -> int:
    """The HTTP status the server gives a POST sent by this page (its cookies, a form body)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1]), redirect: 'manual'})"
        ".then(r => done(r.status), e => done(String(e)));", path, fields)


def page_csrf(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")


def test_log_in_and_every_page_renders_without_console_errors(served, browser, tmp_path):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "ana")
    wait_for(browser, "#share")
    assert browser.find_element(By.CSS_SELECTOR, ".who").text == "ana (Quản trị)"
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "header nav a")]
    assert len(links) == 11
    for link in links:
        browser.get(link)
        wait_for(browser, "main h1")
        name = link.rstrip("/").rsplit("/", 1)[-1]
        browser.save_screenshot(str(tmp_path / f"page-{name}.png"))
        assert browser.find_elements(By.ID, "refusal") == [], link
    assert console_errors(browser) == []


def test_the_simulator_shows_what_the_carrier_gets_and_counts_sms_parts_live(served, browser):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "sam")
    wait_for(browser, "#share")
    browser.get(f"{served}/console/simulator")
    text = f"BH QT {SSN} từ 2016 đến 2017"
    browser.find_element(By.ID, "phone").send_keys(OWNER)
    browser.find_element(By.ID, "text").send_keys(text)
    counter = browser.find_element(By.ID, "text-count")
    expected = measure(text)
    assert counter.get_attribute("data-parts") == str(expected.segments)
    assert counter.get_attribute("data-encoding") == "UCS-2" and f"{expected.units} đơn vị" in counter.text
    browser.find_element(By.CSS_SELECTOR, "#simulator-form button[type=submit]").click()
    body = json.loads(wait_for(browser, "#carrier-body").text)
    assert "BHXH: 02 nam 00 thang" in body["replies"][0]["text"] and body["replies"][0]["message_type"] == 1
    assert console_errors(browser) == []


def test_the_counter_matches_gsm_py_at_the_part_boundaries(served, browser):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "sam")
    wait_for(browser, "#share")
    browser.get(f"{served}/console/simulator")
    area = browser.find_element(By.ID, "text")
    for text in ("a" * 160, "a" * 161, "a" * 159 + "€", "ă" * 70, "ă" * 71, "a" * 152 + "[" + "a" * 10, "😀" * 35):
        browser.execute_script("arguments[0].value = arguments[1];"
                               "arguments[0].dispatchEvent(new Event('input'));", area, text)
        counter = browser.find_element(By.ID, "text-count")
        expected = measure(text)
        assert counter.get_attribute("data-parts") == str(expected.segments), text
        assert counter.get_attribute("data-encoding") == {"gsm7": "GSM-7", "ucs2": "UCS-2"}[expected.encoding]


def test_a_viewer_cannot_use_the_simulator_the_server_says_403(served, browser):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "vic")
    wait_for(browser, "#share")
    assert "/console/simulator" not in [a.get_attribute("pathname") for a in browser.find_elements(By.CSS_SELECTOR, "nav a")]
    status = status_of_post(browser, "/console/simulator",
                            {"csrf": page_csrf(browser), "carrier": "open", "phone": OWNER, "text": "BH HD"})
    assert status == 403
    browser.get(f"{served}/console/simulator")
    assert "không được làm việc này" in wait_for(browser, "#refusal").text


def test_a_post_without_the_csrf_token_is_refused(served, browser):
    from selenium.webdriver.common.by import By

    log_in(browser, served, "sam")
    wait_for(browser, "#share")
    browser.get(f"{served}/console/simulator")
    assert status_of_post(browser, "/console/simulator", {"carrier": "open", "phone": OWNER, "text": "BH HD"}) == 403
    browser.execute_script("document.querySelector('#simulator-form input[name=csrf]').remove();")
    browser.find_element(By.ID, "phone").send_keys(OWNER)
    browser.find_element(By.ID, "text").send_keys("BH HD")
    browser.find_element(By.CSS_SELECTOR, "#simulator-form button[type=submit]").click()
    assert "CSRF" in wait_for(browser, "#refusal").text


def test_a_sixth_wrong_password_finds_the_account_locked(served, browser):
    from selenium.webdriver.common.by import By

    assert ACCOUNTS["vic"] == "viewer"
    for attempt in range(1, 6):
        log_in(browser, served, "lou", "wrong password!")
        error = wait_for(browser, "#login-error").text
        assert ("bị khoá" in error) == (attempt == 5), (attempt, error)
    log_in(browser, served, "lou", "wrong password!")
    assert "bị khoá" in wait_for(browser, "#login-error").text
    log_in(browser, served, "lou")   # the right password, while locked
    assert "bị khoá" in wait_for(browser, "#login-error").text
    assert browser.find_elements(By.CSS_SELECTOR, ".who") == []


def test_keyboard_only_login_and_a_360_pixel_screen(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(360, 780)
    browser.delete_all_cookies()
    browser.get(f"{served}/console/login")
    active = browser.switch_to.active_element   # the name field has the focus: no mouse needed
    assert active.get_attribute("id") == "name"
    active.send_keys("sam", Keys.TAB)
    browser.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    wait_for(browser, "#share")
    for path in ("/console/", "/console/messages", "/console/simulator", "/console/carriers", "/console/billing",
                 "/console/sending"):
        browser.get(f"{served}{path}")
        wait_for(browser, "main h1")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        viewport = browser.execute_script("return window.innerWidth")
        assert width <= viewport, (path, width, viewport)
        browser.save_screenshot(str(tmp_path / f"narrow-{path.strip('/').replace('/', '-') or 'overview'}.png"))
    assert console_errors(browser) == []


def asked_and_opened(served: str, sink: Sink, browser, carrier_id: str, question: str) -> tuple[int, str]:
    """A citizen asks `question` (BH HOI) through carrier `net`; staff member sam opens the
    questions page. (MTs at the sink before the acknowledgment, the question's number.)"""
    before = len(sink.received)
    request = urllib.request.Request(f"{served}/carriers/net/mo", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"id": carrier_id, "from": OWNER, "to": "8079",
                                                      "text": f"BH HOI {question}"}).encode())
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 202
    number = re.search(r"Q[0-9]+", sink.wait(before + 1)[before]["text"]).group(0)
    log_in(browser, served, "sam")
    wait_for(browser, "#share")
    browser.get(f"{served}/console/questions")
    wait_for(browser, f"#answer-{number}")
    return before, number


def test_staff_answer_a_question_and_the_sms_arrives_at_the_carrier(served, sink, browser):
    from selenium.webdriver.common.by import By

    before, number = asked_and_opened(served, sink, browser, "hoi-1", "Bố tôi ở quê muốn hỏi chuyện riêng")
    area = browser.find_element(By.ID, f"answer-{number}")
    answer = "Thẻ của ông còn hạn đến 31/12/2026 ạ. Cảm ơn ông đã hỏi! " * 3
    area.send_keys(answer)
    sent = reply(QuestionReply(number, " ".join(answer.split()), invite=True))   # what the gateway will send
    counter = browser.find_element(By.ID, f"count-{number}")
    assert counter.get_attribute("data-parts") == str(sent.segments)
    assert counter.get_attribute("data-encoding") == {"gsm7": "GSM-7", "ucs2": "UCS-2"}[sent.encoding]
    assert counter.get_attribute("data-units") == str(measure(sent.text).units)
    area.submit()
    assert number in wait_for(browser, "#question-done").text
    mt = sink.wait(before + 2)[before + 1]
    assert mt["to"] == OWNER and mt["text"] == sent.text and mt["segments"] == sent.segments
    assert console_errors(browser) == []


def test_staff_answer_with_an_faq_suggestion_and_the_question_becomes_its_example(served, served_db, sink, browser):
    from selenium.webdriver.common.by import By

    asked = "Mẹ tôi muốn mua bảo hiểm cho cả nhà thì tổng cộng hết bao nhiêu tiền?"
    before, number = asked_and_opened(served, sink, browser, "hoi-faq", asked)
    browser.find_element(By.CSS_SELECTOR, f"#question-{number} details summary").click()
    suggestion = browser.find_element(By.CSS_SELECTOR, f'button[data-fill="answer-{number}"]')
    entry_id, text = suggestion.get_attribute("data-faq"), suggestion.get_attribute("data-text")
    suggestion.click()
    area = browser.find_element(By.ID, f"answer-{number}")
    assert area.get_attribute("value") == text
    assert browser.find_element(By.ID, f"answer-{number}-faq").get_attribute("value") == entry_id
    area.submit()
    assert f"ví dụ cho mục {entry_id}" in wait_for(browser, "#question-done").text
    mt = sink.wait(before + 2)[before + 1]
    assert mt["to"] == OWNER and mt["text"].startswith(f"Tra loi cau hoi {number}: ")
    assert (entry_id, asked) in [(example.id, example.question)
                                 for example in asyncio.run(load_faq(str(served_db))).examples]
    assert console_errors(browser) == []
