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


def test_a_config_that_is_not_utf8_or_is_a_directory_names_the_file_and_line(tmp_path):
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[notices]\nagent = "Đại lý"\n'.encode("utf-8").replace("Đ".encode(), b"\xd0"))
    with pytest.raises(ConfigError) as info:
        load_config(latin1)
    assert str(info.value) == f"{latin1}:2: not UTF-8 text (byte 0xd0); TOML files are UTF-8"
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a TOML file"
