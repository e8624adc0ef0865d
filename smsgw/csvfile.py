"""Checked CSV files: one header, one checked row per line, every refusal `file:line: reason`.

A `CsvFile` says what one kind of file holds: its columns (in any order, some optional), the
check that turns a row's fields into a value (raising `BadRow` with the reason), and the values
that must be unique within the file. `read_rows` reads a file against it: UTF-8 (a BOM
allowed), strict CSV, fields trimmed, blank lines skipped, lines counted from 1 with the header
on line 1. The records import (importer.py) and the FAQ (faq.py) read their files through it.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SmsgwError

_BOM = b"\xef\xbb\xbf"


class ImportFailed(SmsgwError):
    """A bad file or row; `str()` is `file:line: reason`, ready to print to the operator."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        super().__init__(file, line, reason)
        self.file = file
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.reason}"

    def describe(self) -> str:
        return f"import refused, nothing loaded: {self}"


class BadRow(Exception):
    """Raised by a row check with the reason; `read_rows` adds the file and the line."""


@dataclass(frozen=True)
class CsvFile:
    name: str
    columns: tuple[str, ...]
    check: Callable[[dict[str, str]], tuple]
    # Values unique within one file: how to get one from a row (None: no value), and the reason
    # given for a second row with the same value.
    keys: tuple[tuple[Callable[[tuple], Hashable | None], str], ...]
    optional: tuple[str, ...] = ()   # columns a file may leave out

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(name for name in self.columns if name not in self.optional)


def text(value: str, column: str, *, required: bool) -> str:
    """A text field in Unicode NFC; `BadRow` when `required` and empty."""
    if required and not value:
        raise BadRow(f"{column} is empty")
    return unicodedata.normalize("NFC", value)


def read_rows(path: str, spec: CsvFile) -> tuple[list[tuple], list[int], ImportFailed | None]:
    """The good rows of a file up to its first bad row, their lines, and that bad row's failure.

    A file that cannot be read as CSV with `spec`'s header raises `ImportFailed` at once."""
    rows: list[tuple] = []
    lines: list[int] = []
    seen: list[dict[Hashable, int]] = [{} for _ in spec.keys]
    try:
        for line, fields in _csv_records(path, spec):
            try:
                row = spec.check(fields)
            except BadRow as bad:
                raise ImportFailed(path, line, str(bad)) from None
            for (key_of, clash), lines_by_key in zip(spec.keys, seen):
                key = key_of(row)
                if key is None:
                    continue
                if key in lines_by_key:
                    raise ImportFailed(path, line, clash.format(line=lines_by_key[key]))
                lines_by_key[key] = line
            rows.append(row)
            lines.append(line)
    except ImportFailed as failure:
        return rows, lines, failure
    return rows, lines, None


def _csv_records(path: str, spec: CsvFile) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line, {column: field}) for each data row, after checking encoding and header."""
    data = Path(path).read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportFailed(path, line, f"not valid UTF-8 (byte 0x{data[error.start]:02x})") from None
    reader = csv.reader(io.StringIO(decoded, newline=""), strict=True)
    header = _next_record(reader, path)
    if header is None:
        raise ImportFailed(path, 1, f"empty file: expected the header {','.join(spec.required)}")
    columns = [name.strip() for name in header]
    _check_header(path, columns, spec)
    while True:
        line = reader.line_num + 1
        record = _next_record(reader, path)
        if record is None:
            return
        if not record:
            continue
        if len(record) != len(columns):
            raise ImportFailed(path, line, f"expected {len(columns)} fields, found {len(record)}")
        yield line, {name: value.strip() for name, value in zip(columns, record)}


def _next_record(reader: Any, path: str) -> list[str] | None:
    line = reader.line_num + 1
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        raise ImportFailed(path, line, f"malformed CSV: {error}") from None


def _check_header(path: str, columns: list[str], spec: CsvFile) -> None:
    expected = f"expected the columns {','.join(spec.required)} in any order"
    for name in columns:
        if columns.count(name) > 1:
            raise ImportFailed(path, 1, f"duplicated column {name!r}: {expected}")
    for name in spec.columns:
        if name not in columns and name not in spec.optional:
            raise ImportFailed(path, 1, f"missing column {name!r}: {expected}")
    for name in columns:
        if name not in spec.columns:
            raise ImportFailed(path, 1, f"unknown column {name!r}: {expected}")
