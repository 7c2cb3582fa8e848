"""One error type for every configuration problem, with a message that names the field."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration is wrong; the message names the file, the field, the value and the rule."""


def describe_validation_error(error: ValidationError, source: str) -> ConfigError:
    """Turn pydantic's error list into one readable ConfigError naming each bad field."""
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
        lines.append(f"  {location}: {message}{shown}")
    return ConfigError("\n".join(lines))
