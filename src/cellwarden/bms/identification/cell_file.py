"""The identified cell as data: temperature tables and a small TOML writer."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cellwarden.model.tables import Table2D


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"cannot write {number} to TOML")
        return repr(round(number, 10))
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], list | tuple):
            rows = ",\n".join(f"    {_toml_value(row)}" for row in value)
            return f"[\n{rows},\n]"
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for nested dicts of numbers, strings and (nested) lists."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict) and v is not None]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    lines = [f"{key} = {_toml_value(value)}" for key, value in scalars]
    text = "\n".join(lines)
    for key, table in tables:
        name = f"{prefix}.{key}" if prefix else key
        body = to_toml(table, name)
        text += f"\n\n[{name}]\n{body}" if body.strip() else ""
    return text.strip("\n") + "\n" if not prefix else text.strip("\n")


def temperature_table(
    socs: np.ndarray,
    rows: dict[float, np.ndarray],
    digits: int,
    shape: Table2D | None = None,
    additive: bool = False,
) -> dict[str, Any]:
    """A table from rows identified at one or more test temperatures.

    Between the test temperatures the rows are interpolated. With ``shape`` (the base
    chemistry's table) the table also spans its temperatures: beyond the tested range it
    follows the shape's temperature dependence from the nearest tested row (relative for
    resistances and time constants, additive for the OCV); without it only the tested rows
    are written.
    """
    tested = sorted(rows)
    temps = sorted({round(float(t), 1) for t in tested}
                   | (set() if shape is None else set(shape.temp_points_c)))  # fmt: skip
    out = []
    for temp in temps:
        if tested[0] <= temp <= tested[-1]:
            upper = min(np.searchsorted(tested, temp), len(tested) - 1)
            lower = max(upper - 1, 0)
            t0, t1 = tested[lower], tested[upper]
            weight = 0.0 if t1 == t0 else (temp - t0) / (t1 - t0)
            row = (1 - weight) * rows[t0] + weight * rows[t1]
        else:
            nearest = tested[0] if temp < tested[0] else tested[-1]
            here, there = shape.lookup(socs, temp), shape.lookup(socs, nearest)
            row = rows[nearest] + (here - there) if additive else rows[nearest] * here / there
        out.append(np.maximum.accumulate(row) if additive else row)
    return {
        "soc_points": [round(float(s), 4) for s in socs],
        "temp_points_c": temps,
        "values": [[round(float(v), digits) for v in row] for row in out],
    }
