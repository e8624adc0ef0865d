"""The settings machinery: frozen, strictly typed pydantic models, and their errors as `ConfigError`s.

Every table of the configuration is a `Table`: unknown keys are refused, a value of the wrong
type is refused (no "yes" for a bool, no `true` for a number), and nothing can be changed once
loaded. `CarrierSettings` holds the keys every carrier has; each adapter subclasses it with its
own keys and checks (smsgw/adapters/*.py). `config_error` is the one place where pydantic's
errors become the project's `ConfigError`: `FILE: dotted.key: why`, or for a value taken from the
environment `environment: SMSGW_VARIABLE: why`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .adapters import DEFAULT_ADAPTER
from .errors import SmsgwError

ANY_NETWORK = "*"
_NUMBER = re.compile(r"\+?[0-9]{3,15}", re.ASCII)


class ConfigError(SmsgwError, ValueError):
    pass


class SettingProblem(ValueError):
    """A validator's finding about `key` of the model it checks (rather than the model as a whole)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key, self.reason = key, reason


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


def _http_url(value: str) -> str:
    if problem := url_problem(value):
        raise ValueError(problem)
    return value


def network_key(name: str) -> str:
    """A network name compared loosely: `G-Mobile`, `Gmobile` and `gmobile` are one network."""
    return "".join(char for char in name.casefold() if char.isalnum())


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Positive = Annotated[float, Field(gt=0)]
Secret = Annotated[str | None, Field(repr=False)]   # an optional secret: never in a repr, hence never in a log line


class Table(BaseModel):
    """One table of the configuration file."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    given_by_loader: ClassVar[tuple[str, ...]] = ()   # fields the loader fills in, not keys of the table
    secret_keys: ClassVar[tuple[str, ...]] = ()       # each X may instead be read from a file: X_file = "PATH"

    @classmethod
    def keys(cls) -> list[str]:
        """The keys a table of this model may hold."""
        return sorted([*(set(cls.model_fields) - set(cls.given_by_loader)), *(f"{key}_file" for key in cls.secret_keys)])

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in cls.secret_keys:
            file_key = f"{key}_file"
            if file_key not in data:
                continue
            path = data.pop(file_key)
            if key in data:
                raise SettingProblem(file_key, f"give {key} or {file_key}, not both")
            if not isinstance(path, str) or not path:
                raise SettingProblem(file_key, "must be the path of a file holding the secret")
            try:
                data[key] = Path(path).read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingProblem(file_key, f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return data


class CarrierSettings(Table):
    """The keys of every `[carriers.NAME]` table. An adapter's own model adds its keys and names,
    in the class variables, which of them it cannot work without."""

    credential_keys: ClassVar[tuple[str, ...]] = ()  # required unless auth = "none"
    sending_keys: ClassVar[tuple[str, ...]] = ()     # required to send MTs: in async mode, or with networks
    given_by_loader = ("name",)

    name: str = ""                  # the table's name (set by the loader; not a key of the table)
    adapter: str = DEFAULT_ADAPTER
    auth: Literal["required", "none"] = "required"   # "none": unsigned requests taken (warned at start)
    mode: Literal["sync", "async"] = "sync"
    numbers: tuple[str, ...] = ()   # numbers an MO must be sent to (digits); () = the gateway's shortcode
    tps: Positive | None = None     # MT throughput limit, messages per second (token bucket)
    retry_initial: Positive = 1.0   # seconds before the first MT retry
    retry_max: Positive = 300.0     # cap of the exponential back-off
    give_up_after: Positive = 86_400.0  # seconds after which an undelivered MT is failed and refunded
    timeout: Positive = 10.0        # seconds for one MT request
    networks: tuple[str, ...] = ()  # mobile networks whose numbers get notices through this carrier

    @field_validator("numbers", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not value \
                or not all(isinstance(item, str) and _NUMBER.fullmatch(item) for item in value):
            raise ValueError('must be a non-empty list of numbers, digits with an optional "+" (e.g. ["+84898765432"])')
        return tuple(item.removeprefix("+") for item in value)

    @field_validator("networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) \
                or not all(isinstance(item, str) and (network_key(item) or item == ANY_NETWORK) for item in value):
            raise ValueError('must be a list of network names (e.g. "Viettel") or "*" for every other network')
        return tuple(value)

    @model_validator(mode="after")
    def _required_keys(self) -> CarrierSettings:
        if self.auth == "required":
            for key in self.credential_keys:
                if not getattr(self, key):
                    raise SettingProblem(key, f'required by the {self.adapter} adapter unless auth = "none"')
        for key in self.sending_keys:
            if not getattr(self, key):
                if self.mode == "async":
                    raise SettingProblem(key, f'required by the {self.adapter} adapter when mode = "async"')
                if self.networks:
                    raise SettingProblem(key, "required to send notices (the carrier has networks)")
        return self


def config_error(error: ValidationError, source: str, *, model: type[BaseModel], prefix: tuple[str, ...] = (),
                 from_environment: Mapping[tuple[str, ...], str] = {}) -> ConfigError:
    """`error` (of validating `model`, whose keys stand under `prefix`) as one `ConfigError` line a
    problem: `SOURCE: dotted.key: why`, or `environment: VARIABLE: why` for a value that came from
    the environment variable `from_environment[key path]`."""
    lines = []
    for detail in error.errors(include_url=False):
        parts = tuple(str(part) for part in detail["loc"] if not isinstance(part, int))   # list items: the list
        reason = _reason(detail, model, parts)
        problem = detail.get("ctx", {}).get("error")
        if isinstance(problem, SettingProblem):
            parts, reason = parts + (problem.key,), problem.reason
        path = prefix + parts
        variable = from_environment.get(path)
        if variable is not None and detail["type"].endswith("_type") and isinstance(detail["input"], str):
            reason = reason.rpartition(", not ")[0] + f", not {detail['input']!r}"
        lines.append(f"environment: {variable}: {reason}" if variable else f"{source}: {'.'.join(path)}: {reason}")
    return ConfigError("\n".join(lines))


_KINDS = {"bool_type": "bool", "float_type": "number", "int_type": "whole number", "int_from_float": "whole number",
          "string_type": "string", "dict_type": "table", "model_type": "table", "model_attributes_type": "table",
          "tuple_type": "list", "list_type": "list"}


def _reason(detail: Any, model: type[BaseModel], parts: tuple[str, ...]) -> str:
    kind, value = detail["type"], detail.get("input")
    context = detail.get("ctx", {})
    if kind in _KINDS:
        return f"must be a {_KINDS[kind]}, not {_type_name(value)}"
    if kind == "extra_forbidden":
        known = _model_at(model, parts[:-1])
        return f"unknown key (known: {', '.join(known.keys())})" if known else "unknown key"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(context.get("expected", "")))
        return f"must be one of {', '.join(choices)}, not {value!r}"
    if kind == "greater_than":
        return "must be positive" if context.get("gt") == 0 else f"must be more than {context.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be {context.get('ge')} or more"
    if kind == "value_error":
        return str(context.get("error", detail["msg"]))
    return detail["msg"]


def _model_at(model: type[BaseModel], parts: tuple[str, ...]) -> type[Table] | None:
    """The model whose keys stand at `parts` below `model` (through tables and tables of tables)."""
    for part in parts:
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Table):
            model = annotation
        else:       # a dict of tables: the next part is the entry's name
            values = getattr(annotation, "__args__", ())
            if len(values) == 2 and isinstance(values[1], type) and issubclass(values[1], Table):
                return _model_at(values[1], parts[parts.index(part) + 2:])
            return None
    return model if issubclass(model, Table) else None


def _type_name(value: Any) -> str:
    return type(value).__name__
