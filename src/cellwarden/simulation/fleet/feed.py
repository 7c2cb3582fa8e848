"""Feed a simulated fleet's history to the cloud over MQTT, as the packs' edges would send it.

Each pack-day row of a fleet history (docs/fleet-history.md) becomes one synthetic day of
summary records, published as one schema-2 batch (``cellwarden.telemetry.codec``) on the
pack's topic ``cw/{fleet}/{pack_id}/summary`` at QoS 1. Every pack connects as its own device
(``MqttUplink``: client id and user name = its ``pack_id``, as the broker's ACL wants) and
publishes as fast as the broker acknowledges (at most ``MAX_INFLIGHT`` unacknowledged
batches per pack; ``connections`` packs at once). The cloud's daily derivation
(``DailyHistory.derive_day``) turns each day back into (nearly) the same row.

The synthetic day: a record every ``period_s`` (default 300 s; never more than the
derivation's ``MAX_GAP_S``, so that every interval is integrated) from 00:00 UTC of the row's
date to the last one before midnight:

- ``soc_pct``: full at midnight, lowest around noon: ``min + dod_mean_pct × g^p`` with ``g``
  falling linearly from 1 at 00:00 to 0 at noon and rising back, ``p`` chosen so that the
  records' mean is ``soc_mean_pct``; ``min`` puts the mean at 70 % of the swing above the
  minimum where 0–100 % allows (the simulator's packs sit nearer full than empty). Derived
  back: SoC mean = ``soc_mean_pct``, max − min = ``dod_mean_pct``.
- ``current_a``: zero, except for a block of records around noon, discharging (negative)
  before noon and charging after. The block's level is ``current_rms_a`` (the RMS while in
  use), its length ``throughput_ah`` / ``current_rms_a``; with one record at
  ``current_peak_a`` where the day allows it (the level of the others then follows from the
  throughput and the RMS). Quantised to the field's 0.01 A with the rounding carried, the
  trapezoid integral of |current| is ``throughput_ah`` to a thousandth of an Ah. Derived
  back: ``throughput_ah``, ``current_peak_a`` (where it fitted);
  the cloud's ``current_rms_a`` is the RMS over the whole day, lower than the RMS in use.
- ``temp_min_c``, ``temp_max_c``: a daily wave (warmest at 15:00 UTC, coldest at 03:00) whose
  time-mean midpoint is ``temp_mean_c`` and whose highest ``temp_max_c`` is the row's, the two
  ``TEMP_SPREAD_K`` apart (less when the row's max is close to its mean; a row whose max lies
  below its mean gets a flat day at its max).
- ``soh_pct``: ``soh_capacity_pct``, dithered between the two neighbouring 0.1 % steps so that
  the day's mean keeps the row's value beyond the field's resolution.
- ``path_state`` 2 (normal), one string connected, no alarms, warnings or balancing; the
  voltages and limits are not in a history: they travel as missing values.
- A missing value in the row leaves the fields made from it missing for the day.

The sequence number of a record is its time in Unix seconds, so feeding the same rows again
stores nothing twice (the cloud drops a (device, sequence) it has). Not carried: ``efc_total``
(the cloud counts it from the throughput and the pack's registered capacity, on from the last
stored row before the day), ``soh_resistance_pct`` and the daily diagnostics (ambient
temperature, balancing, drift, offsets, ...), for which a summary has no field.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellwarden.cloud.store.daily_history import MAX_GAP_S
from cellwarden.edge.mqtt_uplink import MAX_INFLIGHT, MqttUplink
from cellwarden.telemetry import codec
from cellwarden.telemetry.broker_url import BrokerUrl
from cellwarden.telemetry.schema import SUMMARY_FIELDS, Kind, topic

DAY_S = 86400
DEFAULT_PERIOD_S = 300
SOC_MEAN_POSITION = 0.7  # the day's mean SoC, as a share of its swing above the minimum
TEMP_SPREAD_K = 2.0  # cell temperature spread (max - min) of a record
TEMP_PEAK_H = 15.0  # the day's warmest hour (UTC)
FIRMWARE = "fleet-feed"  # in the retained online status
CONNECT_TIMEOUT_S = 15.0
ACK_TIMEOUT_S = 30.0  # a pack whose broker acknowledges nothing this long fails the feed
PROGRESS_EVERY_S = 0.5
_RESOLUTION = {field.name: field.resolution for field in SUMMARY_FIELDS}
_CONSTANTS = {"path_state": 2.0, "alarms": 0.0, "warnings": 0.0, "worst_code": 0.0,
              "balancing_cells": 0.0, "strings_connected": 1.0}  # fmt: skip

ProgressHook = Callable[[int, int], None]  # (pack-days acknowledged, pack-days to feed)


class FeedError(RuntimeError):
    """A feed that cannot go on; the message names the pack and the reason."""


@dataclass(frozen=True)
class FeedReport:
    """What a feed published; every record counted was acknowledged by the broker."""

    packs: int
    pack_days: int
    records: int
    wall_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / max(self.wall_s, 1e-9)

    @property
    def pack_days_per_s(self) -> float:
        return self.pack_days / max(self.wall_s, 1e-9)

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self) | {
            "records_per_s": round(self.records_per_s, 1),
            "pack_days_per_s": round(self.pack_days_per_s, 2),
        }


# --- the synthetic day ------------------------------------------------------------------------
def records_per_day(period_s: int = DEFAULT_PERIOD_S) -> int:
    """Records of a synthetic day (the last one before midnight)."""
    _check_period(period_s)
    return math.ceil(DAY_S / period_s)


def _check_period(period_s: int) -> None:
    if not (isinstance(period_s, int) and 1 <= period_s <= MAX_GAP_S):
        raise ValueError(f"the record period is 1..{MAX_GAP_S:.0f} whole seconds (the cloud "
                         f"integrates no longer gap), not {period_s!r}")  # fmt: skip


def _value(row: Mapping[str, Any], name: str) -> float:
    value = row.get(name)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _with_mean(base: np.ndarray, mean: float) -> np.ndarray:
    """``base ** p`` (``base`` in 0..1, holding both) with the plain mean nearest ``mean``."""
    low, high = -12.0, 12.0  # log p: the mean falls as p grows
    for _ in range(48):
        middle = 0.5 * (low + high)
        if (base ** math.exp(middle)).mean() > mean:
            low = middle
        else:
            high = middle
    return base ** math.exp(0.5 * (low + high))


def _soc_pct(soc_mean_pct: float, dod_pct: float, count: int) -> np.ndarray:
    if not (math.isfinite(soc_mean_pct) and math.isfinite(dod_pct)):
        return np.full(count, math.nan)
    mean = min(max(soc_mean_pct, 0.0), 100.0)
    dod = min(max(dod_pct, 0.0), 100.0)
    if dod == 0:
        return np.full(count, mean)
    base = np.abs(np.linspace(-1.0, 1.0, count))
    base = (base - base.min()) / (base.max() - base.min())  # 1 at midnight, 0 around noon
    position = min(max(SOC_MEAN_POSITION, (mean + dod - 100.0) / dod), mean / dod)
    shape = _with_mean(base, position)
    lowest = min(max(mean - shape.mean() * dod, 0.0), 100.0 - dod)
    return lowest + dod * shape


def _block(charge_a: float, rms_a: float, peak_a: float, room: int) -> np.ndarray:
    """|current| of the in-use records: ``charge_a`` (their sum) shared so that their RMS is
    near ``rms_a``, one of them at ``peak_a`` where that fits; at most ``room`` records."""
    if not (math.isfinite(rms_a) and rms_a > 0):
        return np.full(room, charge_a / room)
    rest_a = charge_a - peak_a
    if math.isfinite(peak_a) and rms_a < peak_a < charge_a:
        # k records at level b and one at the peak: k b + P = charge, (k b² + P²) / (k + 1) = rms²
        square = rms_a**2 - peak_a**2
        k = round((-square + math.sqrt(square**2 + 4 * rms_a**2 * rest_a**2)) / (2 * rms_a**2))
        if 1 <= k < room and rest_a / k <= peak_a:
            return np.concatenate(([peak_a], np.full(k, rest_a / k)))
    k = min(max(round(charge_a / rms_a), 1), room)
    return np.full(k, charge_a / k)


def _current_a(throughput_ah: float, rms_a: float, peak_a: float, count: int,
               period_s: int) -> np.ndarray:  # fmt: skip
    if not math.isfinite(throughput_ah):
        return np.full(count, math.nan)
    current = np.zeros(count)
    if throughput_ah <= 0:
        return current
    # interior records only: each weighs one period in the trapezoid (the first and last half)
    charge_a = throughput_ah * 3600.0 / period_s
    magnitude = _block(charge_a, rms_a, peak_a, count - 2)
    step_a = _RESOLUTION["current_a"]  # quantised here, the rounding carried to the last ones
    units = np.floor(magnitude / step_a)
    carry = min(round(charge_a / step_a - units.sum()), len(units))
    units[len(units) - carry :] += 1
    start = min(max((count - len(units)) // 2, 1), count - 1 - len(units))
    index = np.arange(start, start + len(units))
    current[index] = np.where(index < count / 2, -units, units) * step_a  # discharge, charge
    return current


def _temps_c(temp_mean_c: float, temp_max_c: float, hours: np.ndarray,
             weights_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(temp_min_c, temp_max_c) of the records."""
    mean_c = min(temp_mean_c, temp_max_c)  # a max below the mean (noise): a flat day at it
    spread_k = min(TEMP_SPREAD_K, 2.0 * (temp_max_c - mean_c))
    wave = 0.5 * (1.0 + np.cos(2.0 * np.pi * (hours - TEMP_PEAK_H) / 24.0))
    wave_mean = float(weights_s @ wave / weights_s.sum())
    amplitude_k = (temp_max_c - 0.5 * spread_k - mean_c) / (wave.max() - wave_mean)
    middle = mean_c + amplitude_k * (wave - wave_mean)
    return middle - 0.5 * spread_k, middle + 0.5 * spread_k


def _soh_pct(soh_pct: float, count: int) -> np.ndarray:
    if not math.isfinite(soh_pct):
        return np.full(count, math.nan)
    step = _RESOLUTION["soh_pct"]
    low = math.floor(soh_pct / step)
    high = round((soh_pct / step - low) * count)  # records one step up
    index = np.arange(count)
    up = np.floor((index + 1) * high / count) > np.floor(index * high / count)  # spread evenly
    return (low + up) * step


def day_batch(row: Mapping[str, Any], period_s: int = DEFAULT_PERIOD_S) -> codec.Batch:
    """The synthetic day of one history row (see the module's description) as
    (sequence number, summary record) pairs."""
    count = records_per_day(period_s)
    day = pd.Timestamp(row["date"]).date()
    start_s = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    offsets_s = np.arange(count, dtype=float) * period_s
    weights_s = np.full(count, float(period_s))
    weights_s[[0, -1]] = 0.5 * period_s  # the trapezoid's weight of each record
    temp_min, temp_max = _temps_c(_value(row, "temp_mean_c"), _value(row, "temp_max_c"),
                                  offsets_s / 3600.0, weights_s)  # fmt: skip
    columns = {field.name: np.full(count, math.nan) for field in SUMMARY_FIELDS} | {
        name: np.full(count, value) for name, value in _CONSTANTS.items()
    } | {
        "time_s": start_s + offsets_s,
        "soc_pct": _soc_pct(_value(row, "soc_mean_pct"), _value(row, "dod_mean_pct"), count),
        "soh_pct": _soh_pct(_value(row, "soh_capacity_pct"), count),
        "current_a": _current_a(_value(row, "throughput_ah"), _value(row, "current_rms_a"),
                                _value(row, "current_peak_a"), count, period_s),
        "temp_min_c": temp_min,
        "temp_max_c": temp_max,
    }  # fmt: skip
    names = list(columns)
    values = zip(*(columns[name].tolist() for name in names), strict=True)
    return [(round(record[0]), dict(zip(names, record, strict=True))) for record in values]


# --- choosing rows ----------------------------------------------------------------------------
def select_rows(history: pd.DataFrame, packs: int | None = None,
                days: int | None = None) -> pd.DataFrame:  # fmt: skip
    """The rows of the first ``packs`` packs (by pack id) over the history's first ``days``
    days, sorted by pack and date."""
    rows = history.assign(pack_id=history["pack_id"].astype(str),
                          date=pd.to_datetime(history["date"]))  # fmt: skip
    if packs is not None:
        rows = rows[rows["pack_id"].isin(sorted(rows["pack_id"].unique())[:packs])]
    if days is not None and len(rows):
        rows = rows[rows["date"] < rows["date"].min() + pd.Timedelta(days=days)]
    return rows.sort_values(["pack_id", "date"], kind="stable").reset_index(drop=True)


def read_passwords(path: str | Path) -> dict[str, str]:
    """``DEVICE:PASSWORD`` lines (the plain file ``mosquitto_passwd -U`` hashes); blank lines
    and ``#`` comments are skipped. ValueError naming a bad line."""
    passwords = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        device, colon, password = text.partition(":")
        if not (colon and device and password):
            raise ValueError(f"{path} line {number}: expected DEVICE:PASSWORD")
        passwords[device] = password
    return passwords


# --- publishing -------------------------------------------------------------------------------
@dataclass
class _Tally:
    """Acknowledged batches and records of all packs (updated from the packs' threads)."""

    pack_days: int = 0
    records: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add(self, records: int) -> None:
        with self.lock:
            self.pack_days += 1
            self.records += records


@dataclass(frozen=True)
class _Target:
    broker: BrokerUrl
    fleet: str
    period_s: int
    ca_file: Path | None


class _Uplink(MqttUplink):
    """``MqttUplink`` that remembers a refused connection (its ``last_error`` is overwritten
    by the disconnect that follows the refusal)."""

    refusal: str | None = None

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refusal = f"the broker {self.broker} refused the connection: {reason_code}"
        super()._on_connect(client, userdata, flags, reason_code, properties)


def _wait_connected(uplink: _Uplink, stop: threading.Event) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while not uplink.connected:
        if uplink.refusal:
            raise FeedError(f"{uplink.device_id}: {uplink.refusal}")
        if stop.is_set():
            raise FeedError(f"{uplink.device_id}: stopped")
        if time.monotonic() > deadline:
            why = uplink.last_error or "no answer"
            raise FeedError(f"{uplink.device_id}: no connection to {uplink.broker} within "
                            f"{CONNECT_TIMEOUT_S:.0f} s ({why})")  # fmt: skip
        time.sleep(0.01)


def _settle(uplink: _Uplink, pending: dict[int, int], tally: _Tally) -> None:
    """Wait for at least one of ``pending`` (packet id -> records) to be acknowledged."""
    deadline = time.monotonic() + ACK_TIMEOUT_S
    before = len(pending)
    while True:
        while uplink.acks:
            ack = uplink.acks.popleft()
            records = pending.pop(ack.mid, None)
            if records is None:
                continue  # the retained status
            if ack.refused:
                raise FeedError(f"{uplink.device_id}: the broker refused its summaries "
                                f"({ack.refused}); is its user its device id?")  # fmt: skip
            tally.add(records)
        if len(pending) < before:
            return
        if time.monotonic() > deadline:
            raise FeedError(f"{uplink.device_id}: {len(pending)} batches not acknowledged "
                            f"within {ACK_TIMEOUT_S:.0f} s")  # fmt: skip
        time.sleep(0.0005)


def _feed_pack(target: _Target, device: str, password: str | None,
               rows: Sequence[Mapping[str, Any]], tally: _Tally,
               stop: threading.Event) -> None:  # fmt: skip
    broker = dataclasses.replace(target.broker, username=device, password=password)
    uplink = _Uplink(broker, target.fleet, device, target.ca_file, FIRMWARE)
    name = topic(target.fleet, device, Kind.SUMMARY.value)
    pending: dict[int, int] = {}
    uplink.start()
    try:
        _wait_connected(uplink, stop)
        for row in rows:
            if stop.is_set():
                return
            batch = day_batch(row, target.period_s)
            payload = codec.encode(Kind.SUMMARY, batch)
            while len(pending) >= MAX_INFLIGHT:
                _settle(uplink, pending, tally)
            while (mid := uplink.publish(name, payload)) is None:
                _wait_connected(uplink, stop)  # the connection dropped: paho reconnects
            pending[mid] = len(batch)
        while pending and not stop.is_set():
            _settle(uplink, pending, tally)
    finally:
        uplink.stop()


def feed_history(
    history: pd.DataFrame, broker: BrokerUrl, fleet: str,
    passwords: Mapping[str, str] | None = None, *, period_s: int = DEFAULT_PERIOD_S,
    connections: int = 4, ca_file: Path | None = None, progress: ProgressHook | None = None,
) -> FeedReport:  # fmt: skip
    """Publish every row of ``history`` as a synthetic day of its pack, each pack connected
    as its own device (user name = pack id) with its password from ``passwords``, else the
    broker URL's; returns once the broker has acknowledged everything. FeedError when a pack
    cannot connect or the broker refuses or stops acknowledging; ValueError for a bad id or
    period."""
    _check_period(period_s)
    rows = select_rows(history)
    groups = [(str(device), frame.to_dict("records"))
              for device, frame in rows.groupby("pack_id", sort=True)]  # fmt: skip
    for device, _ in groups:
        topic(fleet, device, Kind.SUMMARY.value)  # every id checked before connecting
    target = _Target(broker, fleet, period_s, ca_file)
    passwords = passwords or {}
    tally, stop = _Tally(), threading.Event()
    started_s = time.perf_counter()
    error: BaseException | None = None
    with ThreadPoolExecutor(max(1, min(connections, len(groups))), "fleet-feed") as pool:
        waiting: set[Future] = {
            pool.submit(_feed_pack, target, device, passwords.get(device, broker.password),
                        pack_rows, tally, stop)
            for device, pack_rows in groups
        }  # fmt: skip
        while waiting:
            done, waiting = wait(waiting, PROGRESS_EVERY_S, FIRST_EXCEPTION)
            if progress is not None:
                progress(tally.pack_days, len(rows))
            failed = [f.exception() for f in done if not f.cancelled() and f.exception()]
            if failed and error is None:
                error = failed[0]
                stop.set()
                for future in waiting:
                    future.cancel()
    if error is not None:
        raise error
    return FeedReport(len(groups), tally.pack_days, tally.records,
                      time.perf_counter() - started_s)  # fmt: skip
