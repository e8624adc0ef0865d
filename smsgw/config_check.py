"""`smsgw config check`: the effective configuration (file + environment), secrets hidden.

The configuration is loaded as `serve` loads it (smsgw/config.py: the file, the `SMSGW_`
variables over it, `*_file` secrets read); every problem found is a `ConfigError` line naming
the file (or the variable) and the key, and all of them are listed at once. What is printed is
the configuration the gateway would run with, every key with its value, as TOML or JSON; a
secret (a key declared `Secret`, whatever table holds it) is printed as `***` when set, never
its value, so the output can be pasted in a ticket.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .config import Config

HIDDEN = "***"


def effective_tables(config: Config) -> dict[str, Any]:
    """The configuration as the file's tables, every key with the value in force, secrets hidden."""
    return {
        "gateway": {"shortcode": config.shortcode, "unicode": config.unicode},
        "policy": {"owner_only": sorted(config.owner_only)},
        "carriers": {name: _table(carrier, skip=("name",)) for name, carrier in config.carriers.items()},
        "routes": {word: _table(route, skip=("keyword",)) for word, route in config.routes.items()},
        "protection": _table(config.protection),
        "notices": _table(config.notices),
        "server": _table(config.server),
        "retention": _table(config.retention),
        "questions": {**_table(config.questions), "holidays": sorted(d.isoformat() for d in config.questions.holidays)},
        "console": _table(config.console),
    }


def _table(model: BaseModel, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    values = {}
    for key, field in type(model).model_fields.items():
        if key in skip:
            continue
        value = getattr(model, key)
        if field.repr is False:   # settings.Secret: never shown
            value = HIDDEN if value else None
        elif isinstance(value, (frozenset, set)):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        values[key] = value
    return values


def render_json(config: Config) -> str:
    return json.dumps({"source": config.source, **effective_tables(config)}, ensure_ascii=False, indent=2)


def render_toml(config: Config) -> str:
    """The tables as TOML (a key left unset, `None`, is shown as a comment)."""
    lines = [f"# effective configuration: {config.source} with the SMSGW_* environment over it; secrets hidden"]
    for name, table in effective_tables(config).items():
        if name in ("carriers", "routes"):
            for entry, keys in table.items():
                lines += ["", f"[{name}.{entry}]", *_keys(keys)]
        else:
            lines += ["", f"[{name}]", *_keys(table)]
    return "\n".join(lines)


def _keys(table: dict[str, Any]) -> list[str]:
    return [f"# {key} (not set)" if value is None else f"{key} = {_toml_value(value)}"
            for key, value in table.items()]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)   # a TOML basic string is a JSON string
