"""Structured logs (structlog): JSON lines off a terminal, a readable console on one.

Personal data never leaves in clear: every string logged, the event, its values and formatted
tracebacks alike, goes through `mask_text`, which hides digit runs of 9 digits or more (phone
numbers, BHXH numbers, personal id numbers) and health-card codes; only our own ids (`mo_id`,
`mt_id`, `request_id`) and the timestamp are left as they are. Fields meant to identify a
subscriber are logged as `phones.mask(msisdn)`.

Libraries log through the standard `logging` module (aiohttp's `aiohttp.server`, `aiohttp.access`,
asyncio's own `asyncio`, Python's warnings): `configure_logging` gives the root logger one handler
rendering their records with the same processors, so that every line the process writes is a
masked JSON line, with `logger` naming where it came from and a traceback as a masked
`exception` string.

The gateway writes one summary line per message (`message`: carrier, mo_id, command, outcome,
error, message_type, segments, duplicate, latency_ms); request-scoped values bound with
`structlog.contextvars.bind_contextvars` are merged into every line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog

_CARD = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2}[1-5])[0-9]{12}(?![0-9])")
_DIGIT_RUN = re.compile(r"(?<![0-9])\+?[0-9](?:[ .\-]?[0-9]){8,}(?![0-9])")
# What both patterns need: nine digits, separators allowed (a card code has twelve in a row).
# One search of this settles most strings, which have nothing to hide (1.3 -> 0.2 us a string).
_NINE_DIGITS = re.compile(r"[0-9](?:[ .\-]?[0-9]){8}")
_SHOWN = 3


def mask_text(text: str) -> str:
    """`text` with card codes and digit runs of 9 or more (separators allowed) hidden."""
    if _NINE_DIGITS.search(text) is None:
        return text
    text = _CARD.sub(lambda m: m[1] + "*" * 12, text)
    return _DIGIT_RUN.sub(lambda m: m[0][:_SHOWN] + re.sub(r"[0-9]", "*", m[0][_SHOWN:]), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        # Nothing shorter than 9 characters can hold a 9-digit run or a 15-character card code.
        return mask_text(value) if len(value) >= 9 else value
    if isinstance(value, Mapping):
        return {key: _mask_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_value(item) for item in value]
    return value


# Our own identifiers and the processors' fields: never personal, and masking them would break
# log correlation (an id like `...-0000-000000000123` looks like a digit run).
_OWN_FIELDS = frozenset({"mo_id", "mt_id", "request_id", "timestamp", "level", "component"})


_PLAIN = frozenset({int, float, bool, type(None)})


def mask_personal_data(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor applying `mask_text` to every string in the event but our own ids."""
    for key, value in event_dict.items():
        if key in _OWN_FIELDS or type(value) in _PLAIN:   # numbers: skip the ABC check below
            continue
        if isinstance(value, str):
            if len(value) >= 9:   # nothing shorter holds a 9-digit run or a 15-character card code
                event_dict[key] = mask_text(value)
        elif isinstance(value, (Mapping, list, tuple)):
            event_dict[key] = _mask_value(value)
    return event_dict


def configure_logging(stream: TextIO | None = None, *, json: bool | None = None, level: int = logging.INFO) -> None:
    """Send structlog output, and the standard library's records, to `stream` (stderr), as JSON
    lines unless it is a terminal; both masked."""
    stream = stream if stream is not None else sys.stderr
    as_json = json if json is not None else not stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    shared = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(stream, level, structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))


class _StandardHandler(logging.StreamHandler):
    """The root logger's handler installed by `configure_logging` (replaced by the next call)."""


def _route_standard_logging(stream: TextIO, level: int, formatter: logging.Formatter) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StandardHandler)]:
        root.removeHandler(handler)
    handler = _StandardHandler(stream)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger("smsgw", **initial)
