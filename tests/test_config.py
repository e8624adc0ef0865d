"""Configuration: the CONTRACT §6 example loads; every mistake names the file and the key."""

from __future__ import annotations

import pytest

from smsgw.config import Config, ConfigError, load_config

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
