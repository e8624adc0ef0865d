"""Configuration: one TOML file (CONTRACT §6) loaded once into typed, frozen objects.

Every key is checked: an unknown key, a wrong type or a bad value is a `ConfigError` naming the
file and the dotted key. With no file, the defaults below apply (no carrier is configured).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

COMMANDS = ("QT", "HS", "THE")
ADAPTERS = ("generic", "mock", "kannel", "vn-cp", "twilio")
MODES = ("sync", "async")
AUTHS = ("required", "none")

# Keys each adapter needs: always unless auth = "none" (credentials), and in async mode (MT).
_CREDENTIALS = {"generic": ("secret",), "vn-cp": ("username", "password"), "twilio": ("auth_token",)}
_ASYNC = {
    "generic": ("mt_url",), "mock": (), "kannel": ("sendsms_url", "username", "password"),
    "vn-cp": ("mt_url",), "twilio": ("mt_url", "account_sid", "auth_token"),
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class CarrierConfig:
    name: str
    adapter: str = "generic"
    secret: str | None = None       # generic: HMAC-SHA256 key of X-Smsgw-Signature
    require_timestamp: bool = False  # generic: refuse requests without a signed X-Smsgw-Timestamp
    signature_window: float = 300.0  # generic: seconds a signed timestamp may be off the clock, either way
    numbers: tuple[str, ...] = ()   # numbers an MO must be sent to (digits); () = the gateway's shortcode
    auth: str = "required"          # "required": the adapter's own authentication; "none": unsigned
    mode: str = "sync"
    mt_url: str | None = None       # generic, vn-cp: where MTs go; twilio: the REST API base URL
    sendsms_url: str | None = None  # kannel: smsbox's /cgi-bin/sendsms
    username: str | None = None     # kannel sendsms user; vn-cp account
    password: str | None = None
    allow_ips: tuple[str, ...] = ()  # kannel: addresses or networks allowed to deliver MOs
    token: str | None = None        # kannel: shared token expected in the MO URL (?token=...)
    form: str = "http"              # vn-cp: "http" (form-encoded) or "soap"
    account_sid: str | None = None  # twilio
    auth_token: str | None = None   # twilio: key of X-Twilio-Signature and REST basic auth
    public_url: str | None = None   # twilio: the public base URL (signatures behind a proxy); kannel: base of dlr-url
    tps: float | None = None        # MT throughput limit, messages per second (token bucket)
    retry_initial: float = 1.0      # seconds before the first MT retry
    retry_max: float = 300.0        # cap of the exponential back-off
    give_up_after: float = 86_400.0  # seconds after which an undelivered MT is failed and refunded
    timeout: float = 10.0           # seconds for one MT request
    networks: tuple[str, ...] = ()  # mobile networks whose numbers get notices through this carrier


@dataclass(frozen=True)
class RouteConfig:
    """Another service on the shared short code, chosen by the message's first word."""

    keyword: str                    # upper case
    url: str | None = None          # forward the MO as form fields; the response body is the reply
    text: str | None = None         # or answer with this fixed text
    timeout: float = 5.0            # seconds for the forwarded request
    message_type: int | None = None  # billing of the reply: default 1 (url) or 0 (text)

    @property
    def billing(self) -> int:
        if self.message_type is not None:
            return self.message_type
        return 1 if self.url else 0


@dataclass(frozen=True)
class ProtectionConfig:
    """Per-sender limits of the gateway (`[protection]`; on by default with these values)."""

    lookups_per_hour: int = 10      # MOs answered per sender in any rolling hour; 0: no limit
    repeat_limit: int = 5           # the same text answered at most this often in a rolling minute; 0: no guard
    exempt: frozenset[str] = frozenset()  # normalised MSISDNs never limited (operators' test phones)


@dataclass(frozen=True)
class NoticesConfig:
    """Outbound notices (`smsgw notify ...`)."""

    sender: str = "BHXHVN"          # the brandname notices are sent from
    agent: str = "cơ quan BHXH nơi cư trú"  # who to contact, in the card-expiry notice
    rate: float | None = None       # SMS per second per carrier for notices (default: the carrier's tps)


@dataclass(frozen=True)
class ServerConfig:
    """Client connections of `smsgw serve` (`[server]`; smsgw/listener.py)."""

    header_timeout: float = 10.0    # s from a request's first byte to the end of its headers
    body_timeout: float = 30.0      # s from the end of the headers to the end of the body
    idle_timeout: float = 75.0      # s a keep-alive connection may wait for its next request
    max_connections: int = 4096     # open client connections; never above the open-file limit less a reserve
    shutdown_grace: float = 30.0    # s after SIGTERM for the requests under way


@dataclass(frozen=True)
class Config:
    shortcode: str = "8079"
    unicode: bool = False
    owner_only: frozenset[str] = frozenset({"QT", "THE"})
    carriers: dict[str, CarrierConfig] = field(default_factory=dict)
    routes: dict[str, RouteConfig] = field(default_factory=dict)
    protection: ProtectionConfig = ProtectionConfig()
    notices: NoticesConfig = NoticesConfig()
    server: ServerConfig = ServerConfig()
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


ANY_NETWORK = "*"


def network_key(name: str) -> str:
    """A network name compared loosely: `G-Mobile`, `Gmobile` and `gmobile` are one network."""
    return "".join(char for char in name.casefold() if char.isalnum())


_TABLES = ("carriers", "gateway", "notices", "policy", "protection", "routes", "server")
_ROUTE = {"url": str, "text": str, "timeout": (int, float), "message_type": int}
_ROUTE_MESSAGE_TYPES = {0, 1, 21, 22}
_RESERVED_KEYWORDS = {"BH", "HD", "HELP"}
_GATEWAY = {"shortcode": str, "unicode": bool}
_POLICY = {"owner_only": list}
_CARRIER = {
    "adapter": str, "secret": str, "auth": str, "mode": str, "mt_url": str,
    "retry_initial": (int, float), "retry_max": (int, float), "give_up_after": (int, float),
    "timeout": (int, float), "sendsms_url": str, "username": str, "password": str,
    "allow_ips": list, "token": str, "form": str, "account_sid": str, "auth_token": str,
    "public_url": str, "tps": (int, float), "networks": list,
    "require_timestamp": bool, "signature_window": (int, float), "numbers": list,
}
_CARRIER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)
_URL_KEYS = ("mt_url", "sendsms_url", "public_url")
_TIMESTAMP_KEYS = ("require_timestamp", "signature_window")
TIMESTAMP_ADAPTERS = ("generic", "mock")   # the adapters signing with X-Smsgw-Timestamp
_NUMBER = re.compile(r"\+?[0-9]{3,15}", re.ASCII)
_PROTECTION = {"lookups_per_hour": int, "repeat_limit": int, "exempt": list}
_NOTICES = {"sender": str, "agent": str, "rate": (int, float)}
_SERVER = {"header_timeout": (int, float), "body_timeout": (int, float), "idle_timeout": (int, float),
           "max_connections": int, "shutdown_grace": (int, float)}
_MAX_BRANDNAME = 11


def load_config(path: str | Path | None) -> Config:
    """Load and validate the TOML file at `path`; None gives the defaults."""
    if path is None:
        return Config()
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
    return parse_config(data, source)


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {reason}")

    def check(table: Any, schema: dict[str, Any], prefix: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise fail(prefix, "must be a table")
        for key, value in table.items():
            if key not in schema:
                raise fail(f"{prefix}.{key}", f"unknown key (known: {', '.join(sorted(schema))})")
            expected = schema[key]
            # bool is an int in Python; never accept it where a number is meant.
            if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
                names = expected.__name__ if isinstance(expected, type) else "number"
                raise fail(f"{prefix}.{key}", f"must be a {names}, not {type(value).__name__}")
        return table

    for key in data:
        if key not in _TABLES:
            raise fail(key, f"unknown table (known: {', '.join(_TABLES)})")
    gateway = check(data.get("gateway", {}), _GATEWAY, "gateway")
    policy = check(data.get("policy", {}), _POLICY, "policy")

    shortcode = gateway.get("shortcode", "8079")
    if not shortcode.isdigit():
        raise fail("gateway.shortcode", f"must be digits, not {shortcode!r}")
    owner_only = policy.get("owner_only", ["QT", "THE"])
    for command in owner_only:
        if command not in COMMANDS:
            raise fail("policy.owner_only", f"unknown command {command!r} (known: {', '.join(COMMANDS)})")

    carriers_table = data.get("carriers", {})
    if not isinstance(carriers_table, dict):
        raise fail("carriers", "must be a table of [carriers.NAME] tables")
    carriers = {}
    for name, table in carriers_table.items():
        prefix = f"carriers.{name}"
        if not _CARRIER_NAME.fullmatch(name):
            raise fail(prefix, f"carrier name {name!r} must be 1-64 ASCII letters, digits, '-' or '_', starting "
                               "with a letter or digit (it is the path segment of /carriers/NAME/mo)")
        table = dict(check(table, _CARRIER, prefix))
        for key in _URL_KEYS:
            if key in table and (problem := url_problem(table[key])):
                raise fail(f"{prefix}.{key}", problem)
        if "numbers" in table:
            table["numbers"] = _numbers(table["numbers"], f"{prefix}.numbers", fail)
        if "allow_ips" in table:
            ips = table["allow_ips"]
            if not all(isinstance(ip, str) for ip in ips):
                raise fail(f"{prefix}.allow_ips", "must be a list of addresses or networks (strings)")
            for ip in ips:
                try:
                    ipaddress.ip_network(ip, strict=False)
                except ValueError:
                    raise fail(f"{prefix}.allow_ips", f"not an address or network: {ip!r}") from None
            table["allow_ips"] = tuple(ips)
        if "networks" in table:
            table["networks"] = _networks(table["networks"], f"{prefix}.networks", carriers, fail)
        carrier = CarrierConfig(name=name, **table)
        if carrier.adapter not in ADAPTERS:
            raise fail(f"{prefix}.adapter", f"unknown adapter {carrier.adapter!r} (known: {', '.join(ADAPTERS)})")
        if carrier.mode not in MODES:
            raise fail(f"{prefix}.mode", f"must be one of {', '.join(MODES)}, not {carrier.mode!r}")
        if carrier.auth not in AUTHS:
            raise fail(f"{prefix}.auth", f"must be one of {', '.join(AUTHS)}, not {carrier.auth!r}")
        if carrier.auth == "required":
            for key in _CREDENTIALS.get(carrier.adapter, ()):
                if not getattr(carrier, key):
                    raise fail(f"{prefix}.{key}", f'required by the {carrier.adapter} adapter unless auth = "none"')
            if carrier.adapter == "kannel" and not (carrier.allow_ips or carrier.token):
                raise fail(f"{prefix}.allow_ips", 'the kannel adapter needs allow_ips and/or token unless auth = "none"')
        if carrier.mode == "async":
            for key in _ASYNC[carrier.adapter]:
                if not getattr(carrier, key):
                    raise fail(f"{prefix}.{key}", f'required by the {carrier.adapter} adapter when mode = "async"')
        if carrier.networks:
            for key in _ASYNC[carrier.adapter]:
                if not getattr(carrier, key):
                    raise fail(f"{prefix}.{key}", "required to send notices (the carrier has networks)")
        if carrier.form not in ("http", "soap"):
            raise fail(f"{prefix}.form", f"must be http or soap, not {carrier.form!r}")
        for key in _TIMESTAMP_KEYS:
            if key in table and carrier.adapter not in TIMESTAMP_ADAPTERS:
                raise fail(f"{prefix}.{key}", f"only the generic adapter signs with a timestamp, not {carrier.adapter}")
        if carrier.require_timestamp and carrier.auth == "none":
            raise fail(f"{prefix}.require_timestamp", 'needs auth = "required" (unsigned requests have no timestamp)')
        for key in ("retry_initial", "retry_max", "give_up_after", "timeout", "tps", "signature_window"):
            value = getattr(carrier, key)
            if value is not None and value <= 0:
                raise fail(f"{prefix}.{key}", "must be positive")
        carriers[name] = carrier

    routes_table = data.get("routes", {})
    if not isinstance(routes_table, dict):
        raise fail("routes", "must be a table of [routes.KEYWORD] tables")
    routes = {}
    for keyword, table in routes_table.items():
        prefix = f"routes.{keyword}"
        table = check(table, _ROUTE, prefix)
        word = keyword.upper()
        if not (word.isascii() and word.isalnum()):
            raise fail(prefix, "a keyword is letters and digits only")
        if word in _RESERVED_KEYWORDS:
            raise fail(prefix, f"{word} belongs to the insurance service")
        if word in routes:
            raise fail(prefix, f"keyword {word} is routed twice")
        if ("url" in table) == ("text" in table):
            raise fail(prefix, "needs exactly one of url (forward) or text (fixed reply)")
        if "url" in table and (problem := url_problem(table["url"])):
            raise fail(f"{prefix}.url", problem)
        if "text" in table and not table["text"].strip():
            raise fail(f"{prefix}.text", "must not be empty")
        if table.get("timeout", 1) <= 0:
            raise fail(f"{prefix}.timeout", "must be positive")
        if table.get("message_type", 0) not in _ROUTE_MESSAGE_TYPES:
            raise fail(f"{prefix}.message_type", f"must be one of {sorted(_ROUTE_MESSAGE_TYPES)}")
        routes[word] = RouteConfig(keyword=word, **table)

    protection = _protection(check(data.get("protection", {}), _PROTECTION, "protection"), fail)
    notices = _notices(check(data.get("notices", {}), _NOTICES, "notices"), fail)
    server = check(data.get("server", {}), _SERVER, "server")
    for key, value in server.items():
        if value <= 0 and not (key == "shutdown_grace" and value == 0):
            raise fail(f"server.{key}", "must be positive")

    return Config(
        shortcode=shortcode,
        unicode=gateway.get("unicode", False),
        owner_only=frozenset(owner_only),
        carriers=carriers,
        routes=routes,
        protection=protection,
        notices=notices,
        server=ServerConfig(**server),
        source=source,
    )


def url_problem(value: str) -> str | None:
    """Why `value` is not an http(s) URL with a host (None when it is one)."""
    problem = f"must be an http(s) URL with a host (e.g. https://sms.example.vn/mt), not {value!r}"
    try:
        parts = urlsplit(value)
        port_is_valid = parts.port is None or parts.port > 0   # .port raises ValueError on a bad port
    except ValueError:
        return problem
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_is_valid \
            or any(char.isspace() for char in value):
        return problem
    return None


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


def _numbers(value: list, key: str, fail: Any) -> tuple[str, ...]:
    if not value or not all(isinstance(item, str) and _NUMBER.fullmatch(item) for item in value):
        raise fail(key, 'must be a non-empty list of numbers, digits with an optional "+" (e.g. ["+84898765432"])')
    return tuple(item.removeprefix("+") for item in value)


def _networks(value: list, key: str, carriers: dict[str, CarrierConfig], fail: Any) -> tuple[str, ...]:
    if not all(isinstance(item, str) and network_key(item) or item == ANY_NETWORK for item in value):
        raise fail(key, 'must be a list of network names (e.g. "Viettel") or "*" for every other network')
    for item in value:
        for other in carriers.values():
            if item == ANY_NETWORK and ANY_NETWORK in other.networks:
                raise fail(key, f'"*" is already given to carrier {other.name!r}')
            if item != ANY_NETWORK and network_key(item) in {network_key(n) for n in other.networks}:
                raise fail(key, f"network {item!r} already goes to carrier {other.name!r}")
    return tuple(value)


def _protection(table: dict[str, Any], fail: Any) -> ProtectionConfig:
    from .phones import InvalidPhone, normalize

    for key in ("lookups_per_hour", "repeat_limit"):
        if table.get(key, 0) < 0:
            raise fail(f"protection.{key}", "must be 0 (off) or more")
    exempt = set()
    for raw in table.get("exempt", []):
        if not isinstance(raw, str):
            raise fail("protection.exempt", "must be a list of phone numbers (strings)")
        try:
            exempt.add(normalize(raw))
        except InvalidPhone as exc:
            raise fail("protection.exempt", f"{raw!r}: {exc}") from None
    return ProtectionConfig(**{**table, "exempt": frozenset(exempt)})


def _notices(table: dict[str, Any], fail: Any) -> NoticesConfig:
    sender = table.get("sender", NoticesConfig.sender)
    if not sender.strip() or not sender.isascii() or not sender.isdigit() and len(sender) > _MAX_BRANDNAME:
        raise fail("notices.sender", f"must be a brandname of 1-{_MAX_BRANDNAME} ASCII characters or a number")
    if not table.get("agent", NoticesConfig.agent).strip():
        raise fail("notices.agent", "must not be empty")
    if table.get("rate", 1) <= 0:
        raise fail("notices.rate", "must be positive")
    return NoticesConfig(**table)
