"""deploy/: the systemd unit, the Prometheus alert rules and the Grafana dashboard, checked by their
own tools (systemd-analyze, promtool; skipped with the reason when absent) and against the
metrics a real `smsgw serve` exposes."""

from __future__ import annotations

import json
import mmap
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from smsgw.adapters.generic import signature_headers
from smsgw.config import parse_config

pytestmark = pytest.mark.slow

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT, RULES, DASHBOARD = DEPLOY / "smsgw.service", DEPLOY / "alerts.yml", DEPLOY / "grafana-dashboard.json"
INSTALLED_SMSGW = "/opt/smsgw/.venv/bin/smsgw"
SECRET = "deploy-test-secret"
PHONE = "84912345678"     # fixtures/records' reference person (every seeded store has it)
SSN = "0110129425"
METRIC = re.compile(r"\bsmsgw_[a-z0-9_]+")
MATCHERS = re.compile(r"\b(smsgw_[a-z0-9_]+)\{([^}]*)\}")
TARGET_LABELS = {"instance", "job"}     # added by Prometheus at scrape time
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (.ci/run installs it: Debian's "
                    f"{'prometheus' if tool == 'promtool' else 'systemd'} package)")
    return path


def run(*command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


# --- the systemd unit ----------------------------------------------------------------------

def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def runnable_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart on this checkout's smsgw (systemd-analyze checks the binary exists)."""
    text = (text or UNIT.read_text()).replace(INSTALLED_SMSGW, f"{sys.executable} -m smsgw")
    path = tmp_path / "smsgw.service"
    path.write_text(text)
    return path


def test_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path):
    tool = needs("systemd-analyze")
    result = run(tool, "verify", str(runnable_unit(tmp_path)))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    # verify exits 0 on an unknown key or a bad value, but says so on stderr: that is what fails
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly") \
        .replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    result = run(tool, "verify", str(runnable_unit(tmp_path, broken)))
    assert "Failed to parse protect system value" in result.stderr
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_unit_hardening_keeps_the_exposure_level_ok(tmp_path):
    tool = needs("systemd-analyze")
    result = run(tool, "security", "--offline=yes", "--threshold=20", str(runnable_unit(tmp_path)))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr   # exposure <= 2.0 of 10


def test_unit_runs_serve_as_a_dedicated_user_restarted_and_stopped_after_the_grace():
    unit = unit_settings()
    (exec_start,) = unit["ExecStart"]
    assert exec_start.split()[:2] == [INSTALLED_SMSGW, "serve"] and "--workers" in exec_start
    assert unit["User"] == ["smsgw"] and unit["StateDirectory"] == ["smsgw"]
    assert "--db /var/lib/smsgw/" in exec_start     # the only writable place under ProtectSystem=strict
    assert unit["Restart"] == ["on-failure"] and unit["KillSignal"] == ["SIGTERM"]
    # the gateway's own stop: requests under way (shutdown_grace), then MT sends in flight (15 s)
    (stop,) = unit["TimeoutStopSec"]
    assert float(stop.removesuffix("s")) > parse_config({}).server.shutdown_grace + 15
    for setting in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "MemoryDenyWriteExecute"):
        assert unit[setting] == ["yes"], setting
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["LoadCredential"] == ["carrier:/etc/smsgw/credentials"]


# --- the alert rules -----------------------------------------------------------------------

def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_alert_rules_pass_promtool_check():
    result = run(needs("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_severity_summary_description_and_a_for_duration():
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def series(name: str, values: str, **labels: str) -> dict:
    shown = ",".join(f'{key}="{value}"' for key, value in {"job": "smsgw", "instance": "gw1", **labels}.items())
    return {"series": f"{name}{{{shown}}}", "values": values}


# Time 0 of `promtool test rules` is Thursday 1970-01-01 00:00 UTC, 07:00 in Vietnam.
HOUR, DAY = 60, 24 * 60     # in samples of 1 minute
WORKING_THURSDAY_11H = "4h"     # 11:00 in Vietnam
THURSDAY_1730 = "10h30m"   # 17:30 in Vietnam: working hours are over
SATURDAY_11H = "52h"
SUNDAY_11H = "76h"
MO = "smsgw_messages_total"
QUIET = series(MO, f"5+0x{4 * DAY}", carrier="generic", command="QT", outcome="ok")
BUSY = series(MO, f"0+3x{4 * DAY}", carrier="generic", command="QT", outcome="ok")
SCENARIOS: list[tuple[list[dict], str, str, list[dict]]] = [
    # (input series, eval time, alert, the alerts expected to fire: [{"exp_labels": ...}])
    ([QUIET], WORKING_THURSDAY_11H, "SmsgwNoMessagesInWorkingHours", [{"exp_labels": {"severity": "critical"}}]),
    ([QUIET], WORKING_THURSDAY_11H, "SmsgwCarrierSilentInWorkingHours",
     [{"exp_labels": {"severity": "warning", "carrier": "generic"}}]),
    ([QUIET], "1h5m", "SmsgwNoMessagesInWorkingHours", []),   # 08:05: quiet for 30 min, but not yet 10 of them at work
    ([QUIET], THURSDAY_1730, "SmsgwNoMessagesInWorkingHours", []),
    ([QUIET], SATURDAY_11H, "SmsgwNoMessagesInWorkingHours", []),
    ([QUIET], SATURDAY_11H, "SmsgwCarrierSilentInWorkingHours", []),
    ([QUIET], SUNDAY_11H, "SmsgwNoMessagesInWorkingHours", []),
    ([BUSY], WORKING_THURSDAY_11H, "SmsgwNoMessagesInWorkingHours", []),
    ([BUSY], WORKING_THURSDAY_11H, "SmsgwCarrierSilentInWorkingHours", []),
    ([], WORKING_THURSDAY_11H, "SmsgwNoMessagesInWorkingHours",   # not a single MO since the start
     [{"exp_labels": {"severity": "critical"}}]),
    ([series("up", "1x10 0x10")], "15m", "SmsgwDown",
     [{"exp_labels": {"severity": "critical", "job": "smsgw", "instance": "gw1"}}]),
    ([series("up", "1x30")], "15m", "SmsgwDown", []),
    # an MT stored 0 s, 60 s, ... ago: over 15 minutes from minute 16, held 5 minutes
    ([series("smsgw_mt_oldest_pending_seconds", "0+60x40")], "25m", "SmsgwMtPendingTooLong",
     [{"exp_labels": {"severity": "critical", "instance": "gw1"}}]),
    ([series("smsgw_mt_oldest_pending_seconds", "0+60x40")], "18m", "SmsgwMtPendingTooLong", []),
    ([series("smsgw_mt_oldest_pending_seconds", "0+60x13 0x30")], "25m", "SmsgwMtPendingTooLong", []),
    ([series(MO, "0+90x60", carrier="generic", command="QT", outcome="ok"),
      series("smsgw_parse_errors_total", "0+10x60", carrier="generic", kind="bad_signature")],
     "40m", "SmsgwRequestErrorRate", [{"exp_labels": {"severity": "warning", "carrier": "generic"}}]),
    ([series(MO, "0+990x60", carrier="generic", command="QT", outcome="ok"),
      series("smsgw_parse_errors_total", "0+10x60", carrier="generic", kind="bad_signature")],
     "40m", "SmsgwRequestErrorRate", []),
    ([series("smsgw_delivery_reports_total", "0+80x90", carrier="viettel", state="delivered"),
      series("smsgw_delivery_reports_total", "0+20x90", carrier="viettel", state="expired"),
      series("smsgw_delivery_reports_total", "0+50x90", carrier="viettel", state="enroute")],
     "60m", "SmsgwDeliveryFailureRate", [{"exp_labels": {"severity": "warning", "carrier": "viettel"}}]),
    ([series("smsgw_delivery_reports_total", "0+97x90", carrier="viettel", state="delivered"),
      series("smsgw_delivery_reports_total", "0+3x90", carrier="viettel", state="failed")],
     "60m", "SmsgwDeliveryFailureRate", []),
    ([series("smsgw_mt_failures_total", "0x20 1x20", carrier="viettel")], "30m", "SmsgwMtGivenUp",
     [{"exp_labels": {"severity": "warning", "carrier": "viettel"}}]),
    ([series("smsgw_mt_failures_total", "0x40", carrier="viettel")], "30m", "SmsgwMtGivenUp", []),
    ([series("smsgw_responses_total", "0+100x30", route="/carriers/{name}/mo", status="200"),
      series("smsgw_responses_total", "0+5x30", route="/carriers/{name}/mo", status="503"),
      series("smsgw_responses_total", "0+10000x30", route="/metrics", status="200")],
     "20m", "SmsgwServerErrors", [{"exp_labels": {"severity": "critical", "instance": "gw1"}}]),
    ([series("smsgw_responses_total", "0+1000x30", route="/carriers/{name}/mo", status="200"),
      series("smsgw_responses_total", "0+5x30", route="/carriers/{name}/mo", status="503")],
     "20m", "SmsgwServerErrors", []),
    ([series("smsgw_store_up", "1x5 0x10")], "10m", "SmsgwStoreDown",
     [{"exp_labels": {"severity": "critical", "instance": "gw1"}}]),
    ([series("smsgw_store_up", "1x5 0x10 1x10")], "20m", "SmsgwStoreDown", []),
]


def test_each_alert_fires_on_its_condition_and_only_then(tmp_path):
    """`promtool test rules`: every alert fires in a scenario of its condition, and stays quiet in
    the one next to it (working hours in Vietnam time, a ratio under its threshold, a recovery).
    Annotations are left out of the copy tested: promtool compares them verbatim."""
    tool = needs("promtool")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checks: dict[str, list[dict]] = {}   # one promtool test per set of series: it evaluates them once
    for inputs, at, alert, expected in SCENARIOS:
        checks.setdefault(json.dumps(inputs), []).append({"eval_time": at, "alertname": alert, "exp_alerts": expected})
    tests = [{"interval": "1m", "input_series": json.loads(inputs), "alert_rule_test": alert_tests}
             for inputs, alert_tests in checks.items()]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                         "tests": tests}))
    result = run(tool, "test", "rules", str(tmp_path / "tests.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    fired = {alert for _, _, alert, expected in SCENARIOS if expected}
    assert fired == {rule["alert"] for rule in alert_rules()}   # no alert left without a scenario


# --- the dashboard -------------------------------------------------------------------------

def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return queries + [variable["definition"] for variable in dashboard["templating"]["list"]]


def test_dashboard_is_importable_with_a_prometheus_datasource_input():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    assert [item["name"] for item in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}" and panel["targets"], panel["title"]
            assert all(target["datasource"]["uid"] == "${DS_PROMETHEUS}" for target in panel["targets"])


def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each query, as a recording rule, with Grafana's variables filled in."""
    tool = needs("promtool")
    queries = [query.replace("$__rate_interval", "1m").replace("$instance", ".*")
               for query in dashboard_queries() if not query.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"smsgw_dashboard:query{n}", "expr": query}
                                                        for n, query in enumerate(queries)]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    result = run(tool, "check", "rules", str(tmp_path / "queries.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- against a running gateway -------------------------------------------------------------

def start(command: list[str], *, timeout: float = 30) -> tuple[subprocess.Popen, str]:
    """The process and its `smsgw listening on URL ...` line."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("smsgw listening on "):
        stop(process)
        pytest.fail(f"smsgw serve did not start within {timeout} s: {line!r}")
    return process, line.strip()


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
    finally:
        process.stdout.close()


def request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers or {}), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def signed_post(url: str, payload: dict) -> tuple[int, str]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **signature_headers(SECRET, body, timestamp=int(time.time()))}
    return request(url, body, headers)


@pytest.fixture(scope="module")
def store_and_config(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("deploy")
    db, config = folder / "smsgw.db", folder / "smsgw.toml"
    seeded = run(sys.executable, "-m", "smsgw", "db", "seed", "--db", str(db), "--persons", "5")
    assert seeded.returncode == 0, seeded.stderr
    config.write_text(f'[carriers.generic]\nsecret = "{SECRET}"\nrequire_timestamp = true\nmode = "sync"\n')
    return db, config


@pytest.fixture(scope="module")
def exposed_metrics(store_and_config) -> Iterator[str]:
    """/metrics of a real `smsgw serve` after one MO, one refused request and one delivery report."""
    db, config = store_and_config
    process, listening = start([sys.executable, "-m", "smsgw", "serve", "--db", str(db), "--config", str(config),
                                "--host", "127.0.0.1", "--port", "0"])
    url = listening.split()[3]
    try:
        status, _ = signed_post(f"{url}/carriers/generic/mo",
                                {"id": "deploy-1", "from": PHONE, "to": "8079", "text": f"BH QT {SSN}"})
        assert status == 200
        assert request(f"{url}/carriers/generic/mo", b"{}", {"Content-Type": "application/json"})[0] == 401
        assert signed_post(f"{url}/carriers/generic/dlr", {"id": "unknown-mt", "status": "delivered"})[0] == 200
        status, text = request(f"{url}/metrics")
        assert status == 200
        yield text
    finally:
        assert stop(process) == 0


def exposed_names(text: str) -> dict[str, set[str]]:
    """Each name Prometheus would store from this exposition, with the labels its samples carry."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"), "gauge": ("",)}
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):   # declared, even before its first sample
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_is_exposed_by_a_running_gateway(exposed_metrics, source):
    queries = [rule["expr"] for rule in alert_rules()] if source == "alerts" else dashboard_queries()
    exposed = exposed_names(exposed_metrics)
    named = {name for query in queries for name in METRIC.findall(query) if not name.startswith("smsgw_dashboard")}
    assert named and named <= exposed.keys(), sorted(named - exposed.keys())
    for query in queries:   # the labels selected on exist, on the metrics that have samples here
        for name, matchers in MATCHERS.findall(query):
            labels = {label for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers)} - TARGET_LABELS
            if exposed[name]:
                assert labels <= exposed[name], (name, labels - exposed[name])


def test_gateway_runs_the_units_command_line_under_memory_deny_write_execute(store_and_config):
    """MemoryDenyWriteExecute=yes: the kernel's own form of it (PR_SET_MDWE, Linux 6.3+, which
    systemd 254+ uses) set before exec, inherited by the workers; the unit's ExecStart options,
    with a port of its own."""
    db, config = store_and_config
    probe = ("import ctypes, mmap, os, sys\n"
             "libc = ctypes.CDLL(None, use_errno=True)\n"
             f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0: sys.exit(3)\n"
             "os.execv(sys.argv[1], sys.argv[1:])\n")
    check = run(sys.executable, "-c", probe, sys.executable, "-c",
                f"import mmap; mmap.mmap(-1, 4096, prot={mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC})")
    if check.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    assert "PermissionError" in check.stderr   # the control: writable-and-executable memory is refused
    (exec_start,) = unit_settings()["ExecStart"]
    options = exec_start.split()[2:]
    for option, value in (("--db", str(db)), ("--config", str(config)), ("--port", "0")):
        options[options.index(option) + 1] = value
    process, listening = start([sys.executable, "-c", probe, sys.executable, "-m", "smsgw", "serve", *options])
    url = listening.split()[3]
    try:
        assert listening.endswith(f"({options[options.index('--workers') + 1]} workers)"), listening
        answers = [signed_post(f"{url}/carriers/generic/mo",
                               {"id": f"mdwe-{n}", "from": PHONE, "to": "8079", "text": f"BH QT {SSN}"})
                   for n in range(10)]
        assert {status for status, _ in answers} == {200}
        assert request(f"{url}/healthz")[0] == 200
    finally:
        assert stop(process) == 0
