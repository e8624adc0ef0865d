"""The environment over the configuration file (CONTRACT §11): `SMSGW_` variables naming its keys.

`SMSGW_` + the key's path in upper case with `__` between the parts sets that key, overriding the
file: `SMSGW_CARRIERS__GENERIC__SECRET`, `SMSGW_GATEWAY__UNICODE`, `SMSGW_ROUTES__XS__URL`.
pydantic-settings reads the variables (prefix, `__`, names in any case); this module lays them
over the file's tables before the models check the whole:

- A carrier's (or route's) name matches the file's names in any case (`SMSGW_CARRIERS__MOBI9__TPS`
  sets `[carriers.Mobi9] tps`); a name the file does not have defines a new carrier, named in
  lower case, that must then be complete (an adapter's required keys) like one in the file.
- A key whose values are text takes the variable's value as it is; any other takes it as JSON:
  `5`, `0.5`, `true`, `["Viettel", "*"]`. A value of the wrong type is reported naming the variable.
- Setting `X` drops the file's `X_file`, and setting `X_file` drops the file's `X`, so a secret
  moved to a file by the environment does not clash with the one the file had.

Variables naming no table (`SMSGW_TRACEBACK`, `SMSGW_FOO__BAR`) are not configuration and are left alone.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter
from pydantic_settings import BaseSettings, EnvSettingsSource

from .adapters import DEFAULT_ADAPTER, UnknownAdapter
from .settings import ConfigError, Table

Path = tuple[str, ...]


def apply_environment(data: dict[str, Any], environ: Mapping[str, str], settings: type[BaseSettings],
                      carrier_settings: Callable[[Any], type[Table]]) -> tuple[dict[str, Any], dict[Path, str]]:
    """The tables `data` with the `SMSGW_` variables of `environ` over them, and for each key the
    environment set, the variable that set it."""
    reader = EnvSettingsSource(settings)
    variables = {name.lower(): value for name, value in environ.items()}
    merged = copy.deepcopy(data)
    leaves: dict[Path, tuple[str, Any]] = {}
    for table, field in settings.model_fields.items():
        for env_path, value in _leaves(reader.explode_env_vars(table, field, variables), (table,)):
            variable = "SMSGW_" + "__".join(part.upper() for part in env_path)
            leaves[_file_names(env_path, merged, variable)] = (variable, value)
    for path, (_, value) in leaves.items():
        table = _table_at(merged, path[:-1])
        key = path[-1]
        counterpart = key.removesuffix("_file") if key.endswith("_file") else f"{key}_file"
        if path[:-1] + (counterpart,) not in leaves:
            table.pop(counterpart, None)
        table[key] = value
    for path in leaves:
        annotation = _annotation(settings, path, merged, carrier_settings)
        table, key = _table_at(merged, path[:-1]), path[-1]
        if annotation is not None and isinstance(table[key], str) and not _takes_text(annotation):
            table[key] = _typed(table[key], annotation)
    return merged, {path: variable for path, (variable, _) in leaves.items()}


def _leaves(tree: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from _leaves(value, path + (key,))
    elif len(path) > 1:
        yield path, tree


def _file_names(path: Path, data: dict[str, Any], variable: str) -> Path:
    """`path` with the name of a carrier or route as the file spells it (names match in any case)."""
    entries = data.get(path[0])
    if len(path) < 3 or not isinstance(entries, dict):
        return path
    names = [name for name in entries if name.lower() == path[1]]
    if len(names) > 1:
        raise ConfigError(f"environment: {variable}: {path[0]} {' and '.join(map(repr, names))} differ only "
                          "in case: the variable cannot tell which it sets")
    return (path[0], names[0], *path[2:]) if names else path


def _table_at(data: dict[str, Any], path: Path) -> dict[str, Any]:
    for part in path:
        if not isinstance(data.get(part), dict):
            data[part] = {}
        data = data[part]
    return data


def _annotation(settings: type[BaseSettings], path: Path, data: dict[str, Any],
                carrier_settings: Callable[[Any], type[Table]]) -> Any:
    """The type of the key at `path`, if there is such a key."""
    field = settings.model_fields[path[0]]
    if len(path) == 2:
        model = field.annotation
    elif len(path) == 3 and path[0] == "carriers":
        try:
            model = carrier_settings(data["carriers"][path[1]].get("adapter", DEFAULT_ADAPTER))
        except UnknownAdapter:
            return None
    elif len(path) == 3:
        model = get_args(field.annotation)[-1]     # a table of tables, dict[str, Model]
    else:
        return None
    if not (isinstance(model, type) and issubclass(model, Table)):
        return None
    key_field = model.model_fields.get(path[-1])
    return key_field.annotation if key_field is not None else None


def _typed(value: str, annotation: Any) -> Any:
    """A variable's text as a value of the key's type: a number, a bool (`true`, `yes`, `1`, as
    pydantic takes them), or JSON for a list; left as text when it is none (the model then names
    the variable and the type it wants)."""
    scalar = _scalar(annotation)
    try:
        if scalar in (bool, int, float):
            return TypeAdapter(scalar).validate_python(value, strict=False)
        return json.loads(value)
    except ValueError:
        return value


def _scalar(annotation: Any) -> Any:
    """`annotation` without `Annotated` and `None`: `Positive | None` is float."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        return _scalar(members[0]) if len(members) == 1 else annotation
    return annotation


def _takes_text(annotation: Any) -> bool:
    """Whether a key of this type takes text (str, an optional str, a choice of strings)."""
    scalar = _scalar(annotation)
    if get_origin(scalar) is Literal:
        return all(isinstance(choice, str) for choice in get_args(scalar))
    return scalar is str
