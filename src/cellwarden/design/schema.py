"""Bounds the configuration schema puts on a field, read from the schema itself."""

from __future__ import annotations

from pydantic import BaseModel


def upper_bound(model: type[BaseModel], field: str) -> float:
    """The ``le`` bound of ``model.field`` (KeyError if it has none)."""
    for item in model.model_fields[field].metadata:
        bound = getattr(item, "le", None)
        if bound is not None:
            return bound
    raise KeyError(f"{model.__name__}.{field} has no upper bound")
