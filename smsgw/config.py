"""Configuration: one TOML file (CONTRACT §6) and the environment (§11), loaded once into frozen models.

Every key is checked (pydantic models, smsgw/settings.py): an unknown key, a wrong type or a bad
value is a `ConfigError` naming the file and the dotted key. Each `[carriers.NAME]` table is
checked by the settings model of the adapter it names (smsgw/adapters/, found through the
registry), so this module knows no adapter and none of their keys. Every key can also be set
by an environment variable, `SMSGW_` + its path in upper case with `__` between the parts,
overriding the file (smsgw/environment.py). With no file, the defaults below apply (no carrier).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .adapters import DEFAULT_ADAPTER, UnknownAdapter
from .commands import LOOKUPS, QT, THE
from .environment import apply_environment
from .working_hours import QuestionsConfig
from .settings import (
    ANY_NETWORK, CarrierSettings, ConfigError, HttpUrl, Positive, Secret, SettingProblem, Table, config_error,
    network_key, url_problem,
)

__all__ = ["ANY_NETWORK", "Config", "ConfigError", "NoticesConfig", "ProtectionConfig", "RetentionConfig",
           "RouteConfig", "ServerConfig", "load_config", "network_key", "parse_config", "serving_config", "url_problem"]

OWNER_ONLY = frozenset({QT.name, THE.name})
"""The commands answered only to the registered phone unless `[policy] owner_only` says otherwise."""
_RESERVED_KEYWORDS = {"BH", "HD", "HELP"}
_ROUTE_MESSAGE_TYPES = (0, 1, 21, 22)
_CARRIER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)
_MAX_BRANDNAME = 11


class GatewayTable(Table):
    shortcode: str = "8079"
    unicode: bool = False

    @field_validator("shortcode")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"must be digits 0-9, not {value!r}")
        return value


class PolicyTable(Table):
    owner_only: frozenset[str] = OWNER_ONLY   # commands answered only to the registered phone

    @field_validator("owner_only", mode="before")
    @classmethod
    def _commands(cls, value: Any) -> frozenset[str]:
        if not isinstance(value, (list, tuple, frozenset)):
            raise ValueError(f"must be a list of commands ({', '.join(LOOKUPS)})")
        for command in value:
            if command not in LOOKUPS:
                raise ValueError(f"unknown command {command!r} (known: {', '.join(LOOKUPS)})")
        return frozenset(value)


class RouteConfig(Table):
    """Another service on the shared short code, chosen by the message's first word."""

    given_by_loader = ("keyword",)

    keyword: str = ""               # upper case (the table's name)
    url: HttpUrl | None = None      # forward the MO as form fields; the response body is the reply
    text: str | None = None         # or answer with this fixed text
    timeout: Positive = 5.0         # seconds for the forwarded request
    message_type: int | None = None  # billing of the reply: default 1 (url) or 0 (text)

    @property
    def billing(self) -> int:
        if self.message_type is not None:
            return self.message_type
        return 1 if self.url else 0

    @field_validator("text")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("message_type")
    @classmethod
    def _billing(cls, value: int | None) -> int | None:
        if value is not None and value not in _ROUTE_MESSAGE_TYPES:
            raise ValueError(f"must be one of {list(_ROUTE_MESSAGE_TYPES)}")
        return value

    @model_validator(mode="after")
    def _one_answer(self) -> RouteConfig:
        if (self.url is None) == (self.text is None):
            raise ValueError("needs exactly one of url (forward) or text (fixed reply)")
        return self


class ProtectionConfig(Table):
    """Per-sender limits of the gateway (`[protection]`; on by default with these values)."""

    lookups_per_hour: int = Field(10, ge=0)  # MOs answered per sender in any rolling hour; 0: no limit
    repeat_limit: int = Field(5, ge=0)  # the same text answered at most this often in a rolling minute; 0: no guard
    exempt: frozenset[str] = frozenset()  # normalised MSISDNs never limited (operators' test phones)

    @field_validator("exempt", mode="before")
    @classmethod
    def _phones(cls, value: Any) -> frozenset[str]:
        from .phones import InvalidPhone, normalize

        if not isinstance(value, (list, tuple, frozenset)) or not all(isinstance(raw, str) for raw in value):
            raise ValueError("must be a list of phone numbers (strings)")
        exempt = set()
        for raw in value:
            try:
                exempt.add(normalize(raw))
            except InvalidPhone as exc:
                raise ValueError(f"{raw!r}: {exc}") from None
        return frozenset(exempt)


class NoticesConfig(Table):
    """Outbound notices (`smsgw notify ...`)."""

    sender: str = "BHXHVN"          # the brandname notices are sent from
    agent: str = "cơ quan BHXH nơi cư trú"  # who to contact, in the card-expiry notice
    rate: Positive | None = None    # SMS per second per carrier for notices (default: the carrier's tps)
    quiet_hours: str = "21:00-07:00"  # Vietnam time when no notice is sent (quiet_hours.py); "" for none
    dossier_results_every: Positive = 30.0  # s between the gateway's dossier-results runs, at most 60

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        from .quiet_hours import quiet_hours

        span = quiet_hours(value)
        return str(span) if span is not None else ""

    @field_validator("dossier_results_every")
    @classmethod
    def _within_a_minute(cls, value: float) -> float:
        if value > 60:
            raise ValueError("must be at most 60 seconds: a dossier result is sent within a minute")
        return value

    @field_validator("sender")
    @classmethod
    def _brandname(cls, value: str) -> str:
        if not value.strip() or not value.isascii() or not value.isdigit() and len(value) > _MAX_BRANDNAME:
            raise ValueError(f"must be a brandname of 1-{_MAX_BRANDNAME} ASCII characters or a number")
        return value

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ServerConfig(Table):
    """Client connections of `smsgw serve` (`[server]`; smsgw/listener.py)."""

    header_timeout: Positive = 10.0  # s from a request's first byte to the end of its headers
    body_timeout: Positive = 30.0   # s from the end of the headers to the end of the body
    idle_timeout: Positive = 75.0   # s a keep-alive connection may wait for its next request
    max_connections: int = Field(4096, gt=0)  # open client connections; never above the open-file limit less a reserve
    shutdown_grace: float = Field(30.0, ge=0)  # s after SIGTERM for the requests under way


class ConsoleConfig(Table):
    """The operator console (`[console]`, CONTRACT §9; smsgw/console/)."""

    enabled: bool = True            # false: no /console/ routes at all
    https: bool = False             # served behind https (a TLS proxy): session cookies get `Secure`
    session_hours: float = Field(12.0, gt=0, le=24 * 30)  # a session ends this long after login


class RetentionConfig(Table):
    """How long personal data is kept (`[retention]`, CONTRACT §11; smsgw/retention.py)."""

    secret_keys = ("hash_key",)

    days: int = Field(90, ge=1)     # message texts and phone numbers older than this are erased
    hash_key: Secret = None         # HMAC-SHA256 key of the phones kept in billing rows; none: the store's own

    @field_validator("hash_key")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters (a random key: `openssl rand -hex 32`)")
        return value


class Settings(BaseSettings):
    """The file's tables; the environment's variables name their keys (`SMSGW_GATEWAY__UNICODE`)."""

    model_config = SettingsConfigDict(env_prefix="SMSGW_", env_nested_delimiter="__", case_sensitive=False,
                                      frozen=True, extra="forbid", strict=True)

    gateway: GatewayTable = GatewayTable()
    policy: PolicyTable = PolicyTable()
    carriers: dict[str, dict[str, Any]] = {}    # each checked by its adapter's settings model
    routes: dict[str, RouteConfig] = {}
    protection: ProtectionConfig = ProtectionConfig()
    notices: NoticesConfig = NoticesConfig()
    server: ServerConfig = ServerConfig()
    retention: RetentionConfig = RetentionConfig()
    questions: QuestionsConfig = QuestionsConfig()
    console: ConsoleConfig = ConsoleConfig()

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **others: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        """The tables as given: `apply_environment` has laid the environment over them already,
        remembering which variable set which key (for the errors)."""
        return (init_settings,)

    @field_validator("routes")
    @classmethod
    def _keywords(cls, routes: dict[str, RouteConfig]) -> dict[str, RouteConfig]:
        by_word: dict[str, RouteConfig] = {}
        for keyword, route in routes.items():
            word = keyword.upper()
            if not (word.isascii() and word.isalnum()):
                raise SettingProblem(keyword, "a keyword is letters and digits only")
            if word in _RESERVED_KEYWORDS:
                raise SettingProblem(keyword, f"{word} belongs to the insurance service")
            if word in by_word:
                raise SettingProblem(keyword, f"keyword {word} is routed twice")
            by_word[word] = route.model_copy(update={"keyword": word})
        return by_word


@dataclass(frozen=True)
class Config:
    shortcode: str = "8079"
    unicode: bool = False
    owner_only: frozenset[str] = OWNER_ONLY
    carriers: dict[str, CarrierSettings] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    protection: ProtectionConfig = ProtectionConfig()
    notices: NoticesConfig = NoticesConfig()
    server: ServerConfig = ServerConfig()
    retention: RetentionConfig = RetentionConfig()
    questions: QuestionsConfig = QuestionsConfig()
    console: ConsoleConfig = ConsoleConfig()
    source: str = "<defaults>"

    def carrier_for_network(self, network: str) -> str | None:
        """The carrier whose `networks` names `network` (or holds "*"), or None."""
        wanted = network_key(network)
        fallback = None
        for name, carrier in self.carriers.items():
            keys = {network_key(item) for item in carrier.networks}
            if wanted and wanted in keys:
                return name
            if ANY_NETWORK in carrier.networks:
                fallback = name
        return fallback


def load_config(path: str | Path | None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the TOML file at `path` (None: the defaults), under the `SMSGW_`
    variables of `environ` (default: the process's environment)."""
    environ = os.environ if environ is None else environ
    if path is None:
        return parse_config({}, "<defaults>", environ=environ)
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{source}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "TOML files are UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source, environ=environ)


def parse_config(data: dict[str, Any], source: str = "<config>", *,
                 environ: Mapping[str, str] | None = None) -> Config:
    """The configuration of the tables `data` (read from `source`), with the `SMSGW_` variables
    of `environ` over them (None: none; `load_config` passes the process's environment)."""
    data, from_environment = apply_environment(data, environ or {}, Settings, carrier_settings)
    problems = []   # every problem found, the tables' and each carrier's (`smsgw config check` lists them all)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.append(str(config_error(exc, source, model=Settings, from_environment=from_environment)))
        settings = None
    tables = settings.carriers if settings is not None else data.get("carriers")
    carriers: dict[str, CarrierSettings] = {}
    for name, table in (tables.items() if isinstance(tables, dict) else ()):
        if not isinstance(table, dict):
            continue   # refused by the Settings model above
        try:
            carrier = _carrier(name, table, source, from_environment)
            _check_networks(carrier, carriers, source)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        carriers[name] = carrier
    if problems or settings is None:
        raise ConfigError("\n".join(problems))
    return Config(
        shortcode=settings.gateway.shortcode, unicode=settings.gateway.unicode,
        owner_only=settings.policy.owner_only, carriers=carriers, routes=settings.routes,
        protection=settings.protection, notices=settings.notices, server=settings.server,
        retention=settings.retention, questions=settings.questions, console=settings.console,
        source=source,
    )


def carrier_settings(adapter: Any) -> type[CarrierSettings]:
    """The settings model of the adapter named `adapter` (`UnknownAdapter` if there is none)."""
    from .carrier import adapter_class

    return adapter_class(adapter).settings


def _carrier(name: str, table: dict[str, Any], source: str, from_environment: Mapping[tuple[str, ...], str]
             ) -> CarrierSettings:
    prefix = ("carriers", name)
    if not _CARRIER_NAME.fullmatch(name):
        raise ConfigError(f"{source}: carriers.{name}: carrier name {name!r} must be 1-64 ASCII letters, digits, "
                          "'-' or '_', starting with a letter or digit (it is the path segment of /carriers/NAME/mo)")
    try:
        model = carrier_settings(table.get("adapter", DEFAULT_ADAPTER))
    except UnknownAdapter as exc:
        raise ConfigError(f"{source}: carriers.{name}.adapter: {exc}") from None
    if "name" in table:
        raise ConfigError(f"{source}: carriers.{name}.name: unknown key (known: {', '.join(model.keys())})")
    try:
        return model.model_validate({**table, "name": name})
    except ValidationError as exc:
        raise config_error(exc, source, model=model, prefix=prefix, from_environment=from_environment) from None


def _check_networks(carrier: CarrierSettings, others: dict[str, CarrierSettings], source: str) -> None:
    """A network goes to one carrier only, and so does "*" (every other network)."""
    for item in carrier.networks:
        for other in others.values():
            if item == ANY_NETWORK and ANY_NETWORK in other.networks:
                problem = f'"*" is already given to carrier {other.name!r}'
            elif item != ANY_NETWORK and network_key(item) in {network_key(n) for n in other.networks}:
                problem = f"network {item!r} already goes to carrier {other.name!r}"
            else:
                continue
            raise ConfigError(f"{source}: carriers.{carrier.name}.networks: {problem}")


def serving_config(path: str | Path | None) -> Config:
    """The configuration `smsgw serve` runs with: a file is required, and it must name a carrier
    (without one every webhook would get 404)."""
    if path is None:
        raise ConfigError("serve needs --config FILE: a TOML file with at least one [carriers.NAME] table "
                          "(see smsgw.example.toml); without one every webhook would get 404")
    config = load_config(path)
    if not config.carriers:
        raise ConfigError(f"{config.source}: carriers: no [carriers.NAME] table: serve would answer every "
                          "webhook with 404 (see smsgw.example.toml)")
    return config
