"""What a decoded payload must satisfy before it is stored, beyond what the codec checks."""

from __future__ import annotations

import math

import numpy as np

from cellwarden.telemetry.codec import Frame
from cellwarden.telemetry.schema import Kind

MAX_SEQ = 2**62
MAX_FUTURE_S = 86400.0  # a device clock may run ahead of the server this much
MAX_CELLS = 4096


def problem(frame: Frame, now_s: float) -> str | None:
    """Why ``frame`` cannot be stored (None when it can)."""
    seqs = frame.seqs
    if np.any(seqs < 0) or np.any(seqs >= MAX_SEQ):
        return "a sequence number is negative or beyond 2^62"
    if len(seqs) > 1 and not np.all(seqs[1:] > seqs[:-1]):
        return "sequence numbers do not increase within the batch"
    times = _times(frame)
    if times is None:
        return "a record has no numeric time_s"
    if not np.all(np.isfinite(times)):
        return "a record's time_s is missing or not finite"
    if np.any(times < 0) or np.any(times > now_s + MAX_FUTURE_S):
        return f"a record's time_s lies before 1970 or more than {MAX_FUTURE_S:.0f} s ahead"
    if frame.kind is Kind.CELLS:
        cells = frame.cells["voltage_v"].shape[1]
        if cells > MAX_CELLS:
            return f"{cells} cells is more than {MAX_CELLS}"
        if frame.balancing is not None and frame.balancing.shape[1] != cells:
            return "balancing bits do not match the cell count"
    if frame.kind is Kind.EVENT:
        for record in frame.records or []:
            if not isinstance(record.get("code"), str) or not record["code"]:
                return "an event has no code"
    return None


def _times(frame: Frame) -> np.ndarray | None:
    if frame.columns:
        return frame.columns["time_s"]
    values = []
    for record in frame.records or []:
        value = record.get("time_s")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        values.append(float(value) if math.isfinite(value) else math.nan)
    return np.array(values, dtype=float)
