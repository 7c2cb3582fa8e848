"""A characterisation trace made ready for fitting: current offset removed, the charge counted,
the full charge found, and what the CV taper says about the state it left the cell in.

Traces are as ``bms.trace_replay`` describes them (positive current charges). Rows may come at
any spacing, with rows missing; a current is taken as flowing over the interval that ends at
its row, the previous row's held across a gap (``trace_replay.interval_currents``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellwarden.bms.trace_replay import GAP_S, interval_currents

REST_CURRENT_C = 0.005  # |I| below this share of 1C is rest
MIN_REST_FOR_OFFSET_S = 60.0
MIN_MOVE_SOC = 0.0005  # a discharge must move this much to end "full" (not a blip)
CV_WINDOW_V = 0.005  # rows this close to the charge's top voltage are its CV phase
CV_TAIL_CURRENTS = 3.0  # the taper's tail: currents below this many times its last one
CV_TAIL_MIN_ROWS = 20
REST_ANCHOR_S = 600.0  # a rest this long ends close enough to the OCV to anchor it (hours: 1 mV)
ANCHOR_WINDOW_S = 30.0  # the anchor is the median voltage over the rest's last 30 s


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) row index of each run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def run_duration(t: np.ndarray, first: int, last: int) -> float:
    """From the row before the run (its current flows from there) to its last row; where
    rows are missing before the run (a gap over ``GAP_S``) from its first row."""
    start = t[first - 1] if first > 0 and t[first] - t[first - 1] <= GAP_S else t[first]
    return float(t[last] - start)


def rest_rows(current_a: np.ndarray, capacity_ah: float) -> np.ndarray:
    return np.abs(current_a) < REST_CURRENT_C * capacity_ah


def estimate_offset(frame: pd.DataFrame, capacity_ah: float) -> float | None:
    """The median current over the trace's rests of a minute or more (None without any)."""
    t, i = frame["time_s"].to_numpy(), frame["current_a"].to_numpy()
    samples = [
        i[first + 1 : last + 1]
        for first, last in runs(rest_rows(i, capacity_ah))
        if run_duration(t, first, last) >= MIN_REST_FOR_OFFSET_S
    ]
    samples = [s for s in samples if s.size]
    return float(np.median(np.concatenate(samples))) if samples else None


@dataclass(frozen=True)
class RestAnchor:
    """The voltage at the end of a long rest: the OCV, a millivolt or two from relaxed."""

    row: int
    voltage_v: float
    after_charge: bool  # the last current before the rest charged (the OCV's charge branch)


@dataclass
class Trace:
    """A checked trace with its offset-corrected current and the charge counted from full."""

    t: np.ndarray
    i: np.ndarray
    v: np.ndarray
    temp: np.ndarray
    rest: np.ndarray
    removed_ah: np.ndarray  # charge taken out since the end of the full charge (negative before)
    full_row: int  # the end of the charge to full before the first discharge (or row 0)
    cv_voltage_v: float  # the voltage the full charge was held at (nan without a CV phase)
    taper_current_a: float  # the current when that charge ended (nan without a CV phase)
    beyond_full_ah: float  # charge a CV continued to zero current would still have added
    soc: np.ndarray  # the SoC of every row, once the scale is known (see ``set_scale``)

    def set_scale(self, capacity_ah: float, full_soc: float) -> None:
        """SoC = ``full_soc`` at the full row, counting ``capacity_ah`` to 0."""
        self.soc = full_soc - self.removed_ah / capacity_ah

    def rest_anchors(self) -> list[RestAnchor]:
        """The end of every rest of ``REST_ANCHOR_S`` or more."""
        anchors = []
        active = np.flatnonzero(~self.rest)
        for first, last in runs(self.rest):
            if run_duration(self.t, first, last) < REST_ANCHOR_S:
                continue
            tail = (self.t >= self.t[last] - ANCHOR_WINDOW_S) & (np.arange(self.t.size) <= last)
            before = active[active < first]
            after_charge = bool(before.size and self.i[before[-1]] > 0)
            anchors.append(RestAnchor(last, float(np.median(self.v[tail])), after_charge))
        return anchors


def _cv_tail(t: np.ndarray, i: np.ndarray, v: np.ndarray, first: int, last: int):
    """(CV voltage, last current, charge still to come) of the charge rows first..last.

    The taper's tail decays close to exponentially; continued to zero current it would add
    the last current times its time constant (found by a log-linear fit over the tail).
    """
    rows = np.arange(first, last + 1)
    top = float(np.max(v[rows]))
    cv = rows[v[rows] >= top - CV_WINDOW_V]
    if cv.size < CV_TAIL_MIN_ROWS:
        return math.nan, math.nan, 0.0
    end_a = float(i[cv[-1]])
    tail = cv[i[cv] <= CV_TAIL_CURRENTS * end_a]
    if tail.size < CV_TAIL_MIN_ROWS or end_a <= 0:
        return float(np.median(v[cv])), end_a, 0.0
    slope = np.polyfit(t[tail], np.log(np.maximum(i[tail], 1e-9)), 1)[0]
    tau_s = -1.0 / slope if slope < 0 else 0.0
    return float(np.median(v[cv])), end_a, end_a * tau_s / 3600.0


def prepare(frame: pd.DataFrame, capacity_ah: float, offset_a: float) -> Trace:
    """Offset removed, charge counted, the full charge and its CV taper found.

    Full is the end of the last charge before the first discharge that moves at least
    ``MIN_MOVE_SOC`` (a blip at power-up does not count), or the first row.
    """
    t = frame["time_s"].to_numpy(dtype=float)
    i = frame["current_a"].to_numpy(dtype=float) - offset_a
    v = frame["voltage_v"].to_numpy(dtype=float)
    rest = rest_rows(i, capacity_ah)
    charge_ah = np.cumsum(interval_currents(t, i) * np.diff(t, prepend=t[0])) / 3600.0
    first_discharge = t.size
    for first, last in runs(i < -REST_CURRENT_C * capacity_ah):
        if charge_ah[first - 1 if first else 0] - charge_ah[last] >= MIN_MOVE_SOC * capacity_ah:
            first_discharge = first
            break
    charging = np.flatnonzero(i[:first_discharge] > REST_CURRENT_C * capacity_ah)
    full_row = int(charging[-1]) if charging.size else 0
    cv_voltage, taper_a, beyond_ah = math.nan, math.nan, 0.0
    if charging.size:
        charge_runs = runs(i[: full_row + 1] > REST_CURRENT_C * capacity_ah)
        cv_voltage, taper_a, beyond_ah = _cv_tail(t, i, v, *charge_runs[-1])
    return Trace(
        t=t, i=i, v=v, temp=frame["temp_c"].to_numpy(float), rest=rest,
        removed_ah=charge_ah[full_row] - charge_ah, full_row=full_row,
        cv_voltage_v=cv_voltage, taper_current_a=taper_a, beyond_full_ah=beyond_ah,
        soc=np.full(t.size, np.nan),
    )  # fmt: skip
