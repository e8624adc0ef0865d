"""Configuration: the CONTRACT §6 example loads; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgw.config import Config, ConfigError, load_config, parse_config, serving_config

ROOT = Path(__file__).resolve().parent.parent

CONTRACT_EXAMPLE = '''
[gateway]
shortcode = "8079"
unicode = false

[policy]
owner_only = ["QT", "THE"]      # commands answered only to the registered phone

[carriers.generic]
adapter = "generic"
secret = "change-me"
mode = "async"
mt_url = "http://127.0.0.1:9000/mt"
'''


def write(tmp_path, text):
    path = tmp_path / "smsgw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_contract_example_loads(tmp_path):
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE))
    assert config.shortcode == "8079" and config.unicode is False
    assert config.owner_only == {"QT", "THE"}
    generic = config.carriers["generic"]
    assert (generic.adapter, generic.secret, generic.mode, generic.auth) == ("generic", "change-me", "async", "required")
    assert generic.mt_url == "http://127.0.0.1:9000/mt"


def test_no_file_means_defaults():
    assert load_config(None) == Config()


@pytest.mark.parametrize("text, key", [
    ('[gateway]\nunicod = true\n', "gateway.unicod"),
    ('[gateway]\nunicode = "yes"\n', "gateway.unicode"),
    ('[policy]\nowner_only = ["QT", "XX"]\n', "policy.owner_only"),
    ('[gatewy]\n', "gatewy"),
    ('[carriers.x]\nadapter = "generic"\n', "carriers.x.secret"),
    ('[carriers.x]\nauth = "none"\nmode = "async"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmode = "fast"\n', "carriers.x.mode"),
    ('[carriers.x]\nauth = "none"\nadapter = "smpp"\n', "carriers.x.adapter"),
    ('[carriers.x]\nauth = "none"\nretry_initial = true\n', "carriers.x.retry_initial"),
    ('[carriers.x]\nauth = "none"\ngive_up_after = -1\n', "carriers.x.give_up_after"),
    ('[carriers.x]\nauth = "none"\nsecrett = "a"\n', "carriers.x.secrett"),
    ('[carriers.k]\nadapter = "kannel"\n', "carriers.k.allow_ips"),
    ('[carriers.k]\nadapter = "kannel"\nallow_ips = ["10.0.0.300"]\n', "carriers.k.allow_ips"),
    ('[carriers.k]\nadapter = "kannel"\ntoken = "t"\nmode = "async"\n', "carriers.k.sendsms_url"),
    ('[carriers.t]\nadapter = "twilio"\n', "carriers.t.auth_token"),
    ('[carriers.v]\nadapter = "vn-cp"\nusername = "u"\n', "carriers.v.password"),
    ('[carriers.v]\nadapter = "vn-cp"\nauth = "none"\nform = "xml"\n', "carriers.v.form"),
    ('[carriers.v]\nadapter = "vn-cp"\nauth = "none"\ntps = 0\n', "carriers.v.tps"),
    # URLs the MT workers could never reach: refused at start, not given up on and refunded a day later
    ('[carriers.x]\nauth = "none"\nmode = "async"\nmt_url = "not a url"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmode = "async"\nmt_url = "ftp://x/y"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmode = "async"\nmt_url = "http://"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmode = "async"\nmt_url = "https:///mt"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmode = "async"\nmt_url = "http://h:99999/mt"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmode = "async"\nmt_url = "http://h/m t"\n', "carriers.x.mt_url"),
    ('[carriers.x]\nauth = "none"\nmt_url = "127.0.0.1:9000/mt"\n', "carriers.x.mt_url"),
    ('[carriers.k]\nadapter = "kannel"\ntoken = "t"\nmode = "async"\nsendsms_url = "localhost:13013"\n'
     'username = "u"\npassword = "p"\n', "carriers.k.sendsms_url"),
    ('[carriers.t]\nadapter = "twilio"\nauth_token = "a"\npublic_url = "sms.example.vn"\n', "carriers.t.public_url"),
    ('[routes.xs]\nurl = "ftp://x/y"\n', "routes.xs.url"),
    # a carrier's name is a path segment of its webhooks
    ('[carriers."../../etc"]\nauth = "none"\n', "carriers.../../etc"),
    ('[carriers."a b"]\nauth = "none"\n', "carriers.a b"),
    ('[carriers.""]\nauth = "none"\n', "carriers."),
    ('[carriers."-x"]\nauth = "none"\n', "carriers.-x"),
    ('[carriers."viễn"]\nauth = "none"\n', "carriers.viễn"),
    # the numbers MOs must be sent to
    ('[carriers.t]\nauth = "none"\nnumbers = []\n', "carriers.t.numbers"),
    ('[carriers.t]\nauth = "none"\nnumbers = ["8079x"]\n', "carriers.t.numbers"),
    ('[carriers.t]\nauth = "none"\nnumbers = [8079]\n', "carriers.t.numbers"),
    ('shortcode = "\u0668\u0660\u0667\u0669"\n', "shortcode"),   # Arabic-Indic digits: str.isdigit, not 0-9
    # the signature's timestamp
    ('[carriers.g]\nsecret = "k"\nrequire_timestamp = "yes"\n', "carriers.g.require_timestamp"),
    ('[carriers.g]\nsecret = "k"\nsignature_window = 0\n', "carriers.g.signature_window"),
    ('[carriers.g]\nauth = "none"\nrequire_timestamp = true\n', "carriers.g.require_timestamp"),
    ('[carriers.k]\nadapter = "kannel"\ntoken = "t"\nrequire_timestamp = true\n', "carriers.k.require_timestamp"),
])
def test_a_mistake_names_the_file_and_the_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {key}:")


def test_invalid_toml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[gateway\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/mt", "https://sms.example.vn", "http://[::1]:8080/x?y=1",
                                 "HTTPS://Gw.Example.vn/cgi-bin/sendsms"])
def test_http_urls_with_a_host_are_taken(url):
    config = parse_config({"carriers": {"x": {"auth": "none", "mode": "async", "mt_url": url}}})
    assert config.carriers["x"].mt_url == url


def test_carrier_names_of_letters_digits_dash_and_underscore_are_taken():
    names = ["generic", "vn-cp", "viettel_2", "Mobi9"]
    config = parse_config({"carriers": {name: {"auth": "none"} for name in names}})
    assert list(config.carriers) == names


def test_signed_timestamps_and_numbers_keys():
    config = parse_config({"carriers": {
        "g": {"secret": "k", "require_timestamp": True, "signature_window": 60},
        "t": {"adapter": "twilio", "auth_token": "a", "numbers": ["+84898765432", "0898765432"]},
    }})
    generic, twilio = config.carriers["g"], config.carriers["t"]
    assert (generic.require_timestamp, generic.signature_window) == (True, 60)
    # require_timestamp is a key of the generic adapter's settings only: a twilio carrier has none
    assert twilio.numbers == ("84898765432", "0898765432") and not hasattr(twilio, "require_timestamp")
    old = parse_config({"carriers": {"g": {"secret": "k"}}}).carriers["g"]
    assert (old.require_timestamp, old.signature_window, old.numbers) == (False, 300, ())


def test_the_example_config_requires_signed_timestamps():
    config = load_config(ROOT / "smsgw.example.toml")
    generic = config.carriers["generic"]
    assert (generic.require_timestamp, generic.signature_window) == (True, 300)


def test_serve_refuses_to_start_without_a_config_or_without_a_carrier(tmp_path):
    with pytest.raises(ConfigError, match=r"^serve needs --config FILE: .*\[carriers.NAME\]"):
        serving_config(None)
    path = write(tmp_path, '[gateway]\nunicode = true\n')
    with pytest.raises(ConfigError, match=rf"^{path}: carriers: no \[carriers.NAME\] table"):
        serving_config(path)
    assert list(serving_config(write(tmp_path, CONTRACT_EXAMPLE)).carriers) == ["generic"]


def test_the_server_table_sets_connection_limits_and_checks_them(tmp_path):
    config = load_config(write(tmp_path, "[server]\nheader_timeout = 5\nmax_connections = 500\nshutdown_grace = 0\n"))
    assert (config.server.header_timeout, config.server.max_connections, config.server.shutdown_grace) == (5, 500, 0)
    assert (config.server.body_timeout, config.server.idle_timeout) == (30.0, 75.0)
    for text, key in [("body_timeout = 0", "server.body_timeout"), ("max_connections = 1.5", "server.max_connections"),
                      ("idle_timeout = -1", "server.idle_timeout"), ("header_timout = 1", "server.header_timout")]:
        path = write(tmp_path, f"[server]\n{text}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(f"{path}: {key}:")


def test_a_config_that_is_not_utf8_or_is_a_directory_names_the_file_and_line(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[notices]\nagent = "Đại lý"\n'.encode("utf-8").replace("Đ".encode(), b"\xd0"))
    with pytest.raises(ConfigError) as info:
        load_config(latin1)
    assert str(info.value) == f"{latin1}:2: not UTF-8 text (byte 0xd0); TOML files are UTF-8"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a TOML file"


def test_every_problem_is_named_not_only_the_first():
    """`smsgw config check` lists them all: the tables' and each carrier's (main stopped at the first carrier)."""
    with pytest.raises(ConfigError) as refused:
        parse_config({"gateway": {"unicode": "yes"}, "retention": {"days": 0},
                      "carriers": {"b": {"adapter": "generic"}, "c": {"adapter": "generic", "secret": "k", "foo": 1}}},
                     "smsgw.toml")
    lines = str(refused.value).splitlines()
    assert lines[0] == "smsgw.toml: gateway.unicode: must be a bool, not str"
    assert "smsgw.toml: retention.days: must be 1 or more" in lines
    assert 'smsgw.toml: carriers.b.secret: required by the generic adapter unless auth = "none"' in lines
    assert any(line.startswith("smsgw.toml: carriers.c.foo: unknown key") for line in lines) and len(lines) == 4
