"""A small TOML writer for commented configuration files (tomllib only reads).

It writes what scenario files need: tables, arrays of tables, comments, and values that are
strings, booleans, integers, floats, lists and inline tables.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence

LINE_LENGTH = 100
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}  # fmt: skip

TomlValue = str | bool | int | float | Sequence["TomlValue"] | Mapping[str, "TomlValue"]


def format_key(key: str) -> str:
    """A bare key when it may be one, else a quoted key."""
    return key if _BARE_KEY.fullmatch(key) else format_string(key)


def format_string(text: str) -> str:
    """A TOML basic string with every character that needs it escaped."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def format_float(value: float) -> str:
    """A float that reads back as the same float (and as a float, never an integer)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(value))


def format_value(value: TomlValue) -> str:
    """One value as TOML text; lists and mappings become inline arrays and tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{format_key(k)} = {format_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}: {value!r}")


class TomlDocument:
    """Lines of a TOML file, added in order: comments, table headers and key/value pairs."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def comment(self, text: str) -> None:
        """One or more comment lines, wrapped to the line length."""
        for paragraph in text.splitlines() or [""]:
            indent = "  " if paragraph.startswith("- ") else ""
            wrapped = textwrap.wrap(
                paragraph, LINE_LENGTH - 2, subsequent_indent=indent, break_long_words=False
            ) or [""]
            self._lines.extend(f"# {line}".rstrip() for line in wrapped)

    def blank(self) -> None:
        if self._lines and self._lines[-1]:
            self._lines.append("")

    def table(self, name: str, comment: str | None = None) -> None:
        """``[name]`` (a dotted name of bare or quoted parts), after a blank line."""
        self._header(f"[{name}]", comment)

    def array_table(self, name: str, comment: str | None = None) -> None:
        """``[[name]]``: the next element of an array of tables."""
        self._header(f"[[{name}]]", comment)

    def value(self, key: str, value: TomlValue, comment: str | None = None) -> None:
        """``key = value`` with an optional comment on the lines above it."""
        if comment:
            self.comment(comment)
        self._lines.append(f"{format_key(key)} = {format_value(value)}")

    def text(self) -> str:
        return "\n".join(self._lines).rstrip("\n") + "\n"

    def _header(self, header: str, comment: str | None) -> None:
        self.blank()
        if comment:
            self.comment(comment)
        self._lines.append(header)
