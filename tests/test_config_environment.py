"""Configuration from the environment and from secret files (CONTRACT §11)."""

from __future__ import annotations

import pytest

from smsgw.config import ConfigError, load_config

FILE = '''
[gateway]
shortcode = "8079"

[carriers.generic]
secret = "from-the-file"
mode = "async"
mt_url = "http://127.0.0.1:9000/mt"

[carriers.Mobi9]
adapter = "kannel"
token = "t"
'''


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "smsgw.toml"
    path.write_text(FILE, encoding="utf-8")
    return path


def test_a_variable_overrides_the_file_and_takes_json_for_what_is_not_text(config_file, monkeypatch):
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__SECRET", "from-the-environment")
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__TPS", "5")
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__NETWORKS", '["Viettel", "*"]')
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__REQUIRE_TIMESTAMP", "yes")   # a bool as pydantic takes it
    monkeypatch.setenv("SMSGW_GATEWAY__UNICODE", "true")
    monkeypatch.setenv("SMSGW_GATEWAY__SHORTCODE", "8080")      # text: taken as it is
    monkeypatch.setenv("SMSGW_TRACEBACK", "1")                  # not configuration: left alone
    config = load_config(config_file)
    generic = config.carriers["generic"]
    assert (generic.secret, generic.tps, generic.networks) == ("from-the-environment", 5, ("Viettel", "*"))
    assert generic.require_timestamp is True
    assert (generic.mode, generic.mt_url) == ("async", "http://127.0.0.1:9000/mt")    # the file's, untouched
    assert (config.unicode, config.shortcode) == (True, "8080")


def test_a_carrier_name_matches_in_any_case_and_an_unknown_one_is_a_new_carrier(config_file, monkeypatch):
    monkeypatch.setenv("SMSGW_CARRIERS__MOBI9__TPS", "2.5")
    monkeypatch.setenv("SMSGW_CARRIERS__Extra__AUTH", "none")
    config = load_config(config_file)
    assert list(config.carriers) == ["generic", "Mobi9", "extra"]
    assert (config.carriers["Mobi9"].tps, config.carriers["Mobi9"].token) == (2.5, "t")
    assert (config.carriers["extra"].adapter, config.carriers["extra"].auth) == ("generic", "none")


def test_a_new_carrier_from_the_environment_must_be_complete(config_file, monkeypatch):
    monkeypatch.setenv("SMSGW_CARRIERS__EXTRA__ADAPTER", "twilio")
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert str(info.value).startswith(f"{config_file}: carriers.extra.auth_token: required by the twilio adapter")


@pytest.mark.parametrize("variable, value, reason", [
    ("SMSGW_CARRIERS__GENERIC__TPS", "fast", "must be a number, not 'fast'"),
    ("SMSGW_CARRIERS__GENERIC__TPS", "0", "must be positive"),
    ("SMSGW_CARRIERS__GENERIC__MODE", "fast", "must be one of sync, async, not 'fast'"),
    ("SMSGW_CARRIERS__GENERIC__REQUIRE_TIMESTAMP", "maybe", "must be a bool, not 'maybe'"),
    ("SMSGW_CARRIERS__GENERIC__NETWORKS", "Viettel", 'must be a list of network names'),
    ("SMSGW_CARRIERS__MOBI9__ALLOW_IPS", '["10.0.0.300"]', "not an address or network: '10.0.0.300'"),
    ("SMSGW_SERVER__MAX_CONNECTIONS", "1.5", "must be a whole number, not '1.5'"),
    ("SMSGW_GATEWAY__UNICODE", "maybe", "must be a bool, not 'maybe'"),
    ("SMSGW_SERVER__MAX_CONNECTIONS", "many", "must be a whole number, not 'many'"),
    ("SMSGW_GATEWAY__UNICOD", "true", "unknown key (known: shortcode, unicode)"),
    ("SMSGW_CARRIERS__GENERIC__SECRETT", "x", "unknown key (known: adapter, auth, give_up_after, "),
])
def test_a_wrong_value_in_the_environment_names_the_variable(config_file, monkeypatch, variable, value, reason):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert str(info.value).startswith(f"environment: {variable}: {reason}")


def test_the_environment_alone_configures_a_gateway_without_a_file(monkeypatch):
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__SECRET", "k")
    assert load_config(None).carriers["generic"].secret == "k"


def test_names_differing_only_in_case_make_a_variable_ambiguous(tmp_path, monkeypatch):
    path = tmp_path / "smsgw.toml"
    path.write_text('[carriers.mobi]\nauth = "none"\n[carriers.MOBI]\nauth = "none"\n', encoding="utf-8")
    monkeypatch.setenv("SMSGW_CARRIERS__MOBI__TPS", "1")
    with pytest.raises(ConfigError, match=r"^environment: SMSGW_CARRIERS__MOBI__TPS: carriers 'mobi' and 'MOBI' differ"):
        load_config(path)


def write_secret(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_secret_is_read_from_its_file_without_one_trailing_newline(tmp_path):
    secret = write_secret(tmp_path, "generic", "s3cret\n")
    password = write_secret(tmp_path, "kannel", "pass word\n\n")
    token = write_secret(tmp_path, "token", "tok")
    path = tmp_path / "smsgw.toml"
    path.write_text(f'[carriers.g]\nsecret_file = "{secret}"\n'
                    f'[carriers.k]\nadapter = "kannel"\nmode = "async"\nsendsms_url = "http://127.0.0.1:13013/cgi-bin/sendsms"\n'
                    f'username = "u"\npassword_file = "{password}"\ntoken_file = "{token}"\n', encoding="utf-8")
    config = load_config(path, environ={})
    assert config.carriers["g"].secret == "s3cret"
    assert (config.carriers["k"].password, config.carriers["k"].token) == ("pass word\n", "tok")
    assert "s3cret" not in repr(config.carriers["g"]) and "tok" not in repr(config.carriers["k"])


@pytest.mark.parametrize("table, key, reason", [
    ('secret = "a"\nsecret_file = "{file}"', "carriers.g.secret_file", "give secret or secret_file, not both"),
    ('secret_file = "{missing}"', "carriers.g.secret_file", "cannot read {missing}: No such file or directory"),
    ('secret_file = 3', "carriers.g.secret_file", "must be the path of a file holding the secret"),
    ('secret = "a"\nmt_url_file = "{file}"', "carriers.g.mt_url_file", "unknown key (known: adapter, auth, "),
])
def test_secret_file_mistakes_name_the_key_and_the_path(tmp_path, table, key, reason):
    names = {"file": write_secret(tmp_path, "secret", "s"), "missing": tmp_path / "missing"}
    path = tmp_path / "smsgw.toml"
    path.write_text("[carriers.g]\n" + table.format(**names) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: {key}: {reason.format(**names)}")


def test_the_environment_may_move_a_secret_to_a_file(config_file, tmp_path, monkeypatch):
    secret = write_secret(tmp_path, "generic", "rotated\n")
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__SECRET_FILE", str(secret))
    assert load_config(config_file).carriers["generic"].secret == "rotated"
    monkeypatch.setenv("SMSGW_CARRIERS__GENERIC__SECRET_FILE", str(tmp_path / "gone"))
    with pytest.raises(ConfigError) as info:
        load_config(config_file)
    assert str(info.value).startswith("environment: SMSGW_CARRIERS__GENERIC__SECRET_FILE: cannot read ")
