"""A real Kannel 1.4 in front of `smsgw serve`: bearerbox, smsbox and the fakesmsc test SMSC.

The fake phones are fakesmsc processes: each sends its MOs to bearerbox, which hands them to
smsbox, which fetches the sms-service's get-url on the gateway; fakesmsc prints every MT it gets.
One bearerbox and smsbox serve two fake SMSCs: MOs from `fake-sync` go to the sync carrier
`kannel` and are answered in the get-url response; MOs from `fake-async` go to `kannel-async`,
answered through sendsms (forced to `fake-async`) with delivery reports back to the gateway.
The gateway's port is chosen before it starts (not `--port 0`) because the async carrier's
`public_url`, where Kannel sends reports, must name it. The expected replies are the insurance
service's own answers for the same records and configuration.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest

from smsgw.config import load_config
from smsgw.server import BACKLOG
from smsgw.service import Service
from smsgw.store import SqliteStore

pytestmark = pytest.mark.slow

PHONE = "0912345678"
THE = "BH THẺ HC4010110129425"                 # diacritics: the phone sends it in UCS-2
QT = "BH QT 0110129425 2016 2017"             # a reply of 3 UCS-2 parts
TOKEN = "k4nnel-t0ken"
GET_URL_QUERY = f"id=%I&from=%p&to=%P&text=%a&smsc=%i&time=%t&token={TOKEN}"     # the get-url, and our token
STARTUP = 15.0
REPLY_WAIT = 15.0


def _binary(name: str, *extra_dirs: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", *extra_dirs]))


BEARERBOX = _binary("bearerbox")
SMSBOX = _binary("smsbox")
FAKESMSC = _binary("fakesmsc", "/usr/lib/kannel/test", "/usr/local/lib/kannel/test")

_MISSING = [name for name, path in (("bearerbox", BEARERBOX), ("smsbox", SMSBOX), ("fakesmsc", FAKESMSC)) if not path]
if _MISSING:
    pytest.skip(f"Kannel is not installed: {', '.join(_MISSING)} not found (Debian packages kannel and "
                "kannel-extras)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def wait_for_line(lines: queue.Queue, expected: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if lines.get(timeout=max(0.0, deadline - time.monotonic())).strip() == expected:
                return
        except queue.Empty:
            raise AssertionError(f"no {expected!r} after {seconds} s") from None


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Processes:
    """Every process the test starts, with its output kept; all killed at the end, whatever happens."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen] = []
        self.pumps: dict[int, threading.Thread] = {}

    def start(self, name: str, *argv: str, lines: queue.Queue | None = None) -> subprocess.Popen:
        log = open(self.directory / f"{name}.log", "wb")
        process = subprocess.Popen(argv, stdout=subprocess.PIPE if lines is not None else log,
                                   stderr=subprocess.STDOUT if lines is not None else log,
                                   start_new_session=True, cwd=self.directory)
        self.started.append(process)
        if lines is not None:
            self.pumps[process.pid] = threading.Thread(target=_pump, args=(process.stdout, log, lines), daemon=True)
            self.pumps[process.pid].start()
        else:
            log.close()
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=3)
        pump = self.pumps.pop(process.pid, None)
        if pump is not None:
            pump.join(timeout=3)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.directory.glob("*.log")))


def _pump(stream, log, lines: queue.Queue) -> None:
    with stream, log:
        for line in stream:
            log.write(line)
            log.flush()
            lines.put(line.decode("utf-8", "replace"))


GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")


class Phone:
    """What a fakesmsc connection received: whole texts, multi-part messages joined by their UDH."""

    def __init__(self) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.texts: list[tuple[str, str, int]] = []     # (receiver, text, parts)
        self._parts: dict[tuple[str, int], dict[int, bytes]] = {}

    def collect(self, count: int, seconds: float) -> list[tuple[str, str, int]]:
        deadline = time.monotonic() + seconds
        while len(self.texts) < count:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the phone got {len(self.texts)} of {count} messages") from None
            match = GOT.search(line.rstrip("\n"))
            if match:
                self._take(*match.groups())
        return self.texts

    def _take(self, sender: str, receiver: str, kind: str, data: str) -> None:
        if kind == "udh":
            udh_field, _, payload = data.partition(" data ")
            udh = unquote_to_bytes(udh_field)
            reference, total, index = udh[3], udh[4], udh[5]       # 00 03 ref total seq: 8-bit concatenation
            parts = self._parts.setdefault((receiver, reference), {})
            parts[index] = _unquote_plus(payload)
            if len(parts) == total:
                whole = b"".join(parts[n] for n in sorted(parts))
                self.texts.append((receiver, whole.decode("utf-16-be"), total))
                del self._parts[(receiver, reference)]
        elif kind == "ucs-2":
            self.texts.append((receiver, _unquote_plus(data).decode("utf-16-be"), 1))
        else:
            self.texts.append((receiver, data, 1))


def _unquote_plus(data: str) -> bytes:
    """fakesmsc's URL-encoding of binary data: %XX, and '+' for the byte 0x20."""
    return unquote_to_bytes(data.replace("+", "%20"))


def fakesmsc_mo(text: str) -> str:
    """fakesmsc's message argument for an MO from PHONE to 8079: GSM text, or UCS-2 when needed."""
    try:
        text.encode("ascii")
    except UnicodeEncodeError:
        return f"{PHONE} 8079 ucs2 {quote_from_bytes(text.encode('utf-16-be'))}"
    return f"{PHONE} 8079 text {text}"


DEPLOYED_CONF = Path(__file__).resolve().parents[2] / "deploy" / "kannel.conf"
Group = list[tuple[str, str]]


def kannel_groups(text: str) -> list[Group]:
    """A Kannel configuration as its groups (blank lines between them), each its `key = value` lines in order."""
    groups: list[Group] = []
    current: Group = []
    for line in [*text.splitlines(), ""]:
        line = line.strip()
        if not line and current:
            groups.append(current)
            current = []
        elif line and not line.startswith("#"):
            key, equals, value = line.partition("=")
            assert equals, f"{DEPLOYED_CONF}: not `key = value`: {line!r}"
            current.append((key.strip(), value.strip()))
    return groups


def changed(group: Group, **values: str) -> Group:
    """`group` with these keys (underscores for dashes) set: replaced where present, added after."""
    wanted = {key.replace("_", "-"): value for key, value in values.items()}
    return [(key, wanted.pop(key, value)) for key, value in group] + list(wanted.items())


def kannel_conf(directory: Path, settings: dict) -> str:
    """deploy/kannel.conf as shipped, with this test's ports, secrets and logs, and two fake SMSCs for the carrier's.

    Everything else (the sms-service's get-url and headers, mo-recode, concatenation, the
    sendsms-user) is the shipped file's own: this test runs what operators install.
    """
    shipped: dict[str, list[Group]] = {}
    for group in kannel_groups(DEPLOYED_CONF.read_text(encoding="utf-8")):
        shipped.setdefault(dict(group)["group"], []).append(group)
    assert {kind: len(groups) for kind, groups in shipped.items()} == {
        "core": 1, "smsc": 1, "smsbox": 1, "sms-service": 1, "sendsms-user": 1}
    (core,), (smsbox,), (service,), (user,) = (shipped[kind] for kind in ("core", "smsbox", "sms-service", "sendsms-user"))
    get_url = dict(service)["get-url"]
    for placeholder in ("127.0.0.1:8079", "/carriers/kannel/", "token=CHANGE-ME-token"):
        assert get_url.count(placeholder) == 1, f"{DEPLOYED_CONF}: get-url without {placeholder}"
    assert dict(service)["get-url"].strip('"').partition("?")[2] == GET_URL_QUERY.replace(TOKEN, "CHANGE-ME-token")

    def url_for(carrier: str) -> str:
        return (get_url.replace("127.0.0.1:8079", f"127.0.0.1:{settings['gateway']}")
                .replace("/carriers/kannel/", f"/carriers/{carrier}/").replace("CHANGE-ME-token", TOKEN))

    groups = [
        changed(core, admin_port=str(settings["admin"]), admin_password=settings["password"],
                smsbox_port=str(settings["smsbox"]), log_file=f'"{directory / "bearerbox-file.log"}"'),
        *([("group", "smsc"), ("smsc", "fake"), ("smsc-id", smsc_id), ("port", str(settings[port])),
           ("connect-allow-ip", "127.0.0.1")] for smsc_id, port in (("fake-sync", "smsc_sync"),
                                                                     ("fake-async", "smsc_async"))),
        changed(smsbox, bearerbox_port=str(settings["smsbox"]), sendsms_port=str(settings["sendsms"]),
                log_file=f'"{directory / "smsbox-file.log"}"'),
        changed(service, get_url=url_for("kannel"), accepted_smsc="fake-sync"),
        changed(service, get_url=url_for("kannel-async"), accepted_smsc="fake-async"),
        changed(user, password=settings["password"], forced_smsc="fake-async"),
    ]
    assert all("CHANGE-ME" not in value for group in groups for _, value in group)
    return "\n\n".join("\n".join(f"{key} = {value}" for key, value in group) for group in groups) + "\n"


GATEWAY_CONF = """\
[gateway]
unicode = true

[protection]      # the burst test sends 300 MOs from one phone
lookups_per_hour = 0
repeat_limit = 0

[carriers.kannel]
adapter = "kannel"
mode = "sync"
allow_ips = ["127.0.0.1"]
token = "{token}"

[carriers.kannel-async]
adapter = "kannel"
mode = "async"
allow_ips = ["127.0.0.1"]
token = "{token}"
sendsms_url = "http://127.0.0.1:{sendsms}/cgi-bin/sendsms"
username = "smsgw"
password = "{password}"
public_url = "http://127.0.0.1:{gateway}"
retry_initial = 0.2
retry_max = 1.0
"""


@pytest.fixture(scope="module")
def kannel(tmp_path_factory):
    directory = tmp_path_factory.mktemp("kannel")
    ports = {name: free_port() for name in ("admin", "smsbox", "smsc_sync", "smsc_async", "sendsms", "gateway")}
    settings = {**ports, "token": TOKEN, "password": "s3cret-sendsms"}
    (directory / "kannel.conf").write_text(kannel_conf(directory, settings))
    (directory / "smsgw.toml").write_text(GATEWAY_CONF.format(**settings))
    db = directory / "records.db"
    subprocess.run([sys.executable, "-m", "smsgw", "db", "seed", "--db", str(db), "--persons", "10"],
                   check=True, capture_output=True, timeout=60)
    processes = Processes(directory)
    try:
        server_lines: queue.Queue[str] = queue.Queue()
        processes.start("smsgw", sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config",
                        str(directory / "smsgw.toml"), "--port", str(ports["gateway"]), lines=server_lines)
        wait_for_line(server_lines, f"smsgw listening on http://127.0.0.1:{ports['gateway']}", STARTUP)
        processes.start("bearerbox", BEARERBOX, "-v", "1", str(directory / "kannel.conf"))
        wait_until(lambda: listening(ports["smsbox"]) and listening(ports["smsc_sync"]), STARTUP, "bearerbox")
        processes.start("smsbox", SMSBOX, "-v", "1", str(directory / "kannel.conf"))
        wait_until(lambda: listening(ports["sendsms"]), STARTUP, "smsbox")
        yield Kannel(processes, ports, db, directory)
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop_all()


class Kannel:
    def __init__(self, processes: Processes, ports: dict[str, int], db: Path, directory: Path) -> None:
        self.processes = processes
        self.ports = ports
        self.db = db
        self.config = load_config(directory / "smsgw.toml")

    def phone(self, smsc: str, text: str, *, times: int = 1) -> list[tuple[str, str, int]]:
        """Send `text` `times` times from the fake phone on SMSC `smsc`; the `times` messages it gets back."""
        phone = Phone()
        name = f"fakesmsc-{smsc}-{time.monotonic_ns()}"
        process = self.processes.start(name, FAKESMSC, "-H", "127.0.0.1", "-r", str(self.ports[smsc]),
                                       "-i", "0", "-m", str(times), fakesmsc_mo(text), lines=phone.lines)
        try:
            return phone.collect(times, REPLY_WAIT)
        except AssertionError:
            print(self.processes.logs())
            raise
        finally:
            self.processes.stop(process)

    def expected(self, text: str) -> tuple[str, int]:
        """The service's own reply to `text` from PHONE: its text and number of SMS parts."""
        async def answer():
            records = await SqliteStore.open(self.db)
            try:
                return (await Service(records, self.config).handle(text, "84912345678")).reply
            finally:
                await records.close()

        reply = asyncio.run(answer())
        return reply.text, reply.segments

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['gateway']}/metrics", timeout=5) as response:
            return response.read().decode()


def test_sync_replies_reach_the_phone_with_diacritics_and_in_three_parts(kannel):
    the_text, the_parts = kannel.expected(THE)
    qt_text, qt_parts = kannel.expected(QT)
    assert "Thẻ BHYT HC4010110129425" in the_text and (the_parts, qt_parts) == (1, 3)
    assert kannel.phone("smsc_sync", THE) == [(PHONE, the_text, 1)]
    assert kannel.phone("smsc_sync", QT) == [(PHONE, qt_text, 3)]


def test_async_replies_go_through_sendsms_and_their_delivery_reports_come_back(kannel):
    the_text, _ = kannel.expected(THE)
    qt_text, _ = kannel.expected(QT)
    assert kannel.phone("smsc_async", THE) == [("84912345678", the_text, 1)]
    assert kannel.phone("smsc_async", QT) == [("84912345678", qt_text, 3)]
    delivered = 'smsgw_delivery_reports_total{carrier="kannel-async",state="delivered"} 2.0'
    wait_until(lambda: delivered in kannel.metrics(), REPLY_WAIT, "the delivery reports")


def test_the_gateway_listens_with_a_backlog_for_smsbox_bursts(kannel):
    # smsbox has up to max-pending-requests (default 512) get-url requests under way at once.
    assert BACKLOG >= 512
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is needed to read the listening socket's backlog")
    listing = subprocess.run(["ss", "-Hltn", f"sport = :{kannel.ports['gateway']}"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(listing[2]) == min(BACKLOG, somaxconn)


def test_a_burst_from_smsbox_is_answered_in_full(kannel):
    the_text, _ = kannel.expected(THE)
    burst = 300
    assert kannel.phone("smsc_sync", THE, times=burst) == [(PHONE, the_text, 1)] * burst
