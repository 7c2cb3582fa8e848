"""The RS232 serial console: a line protocol to read live values and the event log of a string's
BMS and to change its settings within their validated ranges.

The console runs on the BMS's clock: ``poll(now_s)`` reads whatever has arrived on the port
(never waiting), answers every complete line and returns. No threads, no wall clock. Commands
are described in ``docs/console.md``. Every reply is zero or more data lines followed by one
final line that is ``OK``, starts with ``OK `` or starts with ``ERR ``; data lines never do.
Lines end with CR LF.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError

from cellwarden.model.bms import BmsSettings

if TYPE_CHECKING:
    from cellwarden.bms.event_log import BmsEvent
    from cellwarden.bms.string_bms import BmsState
    from cellwarden.hardware.interfaces import VoltageSample

MAX_LINE_BYTES = 256  # a longer line is answered with ERR and discarded
MAX_READ_BYTES = 4096  # read per poll: bounds the work one tick of the BMS task can be given
DEFAULT_EVENT_COUNT = 10
MAX_EVENT_COUNT = 1000
CR, LF, TAB = 0x0D, 0x0A, 0x09
EOL = "\r\n"

# Settings the running BMS really uses after ``StringBms.apply_settings``: its components read
# them at every step, or apply_settings recomputes what was derived from them. The rest are
# fixed at construction (the protection table's thresholds, the power-up SoC doubt): the
# console shows them but refuses to set them. A new setting is read-only until listed here.
LIVE_KEYS: frozenset[str] = frozenset(
    {
        "power_path.precharge_done_pct",
        "power_path.precharge_done_current_c",
        "power_path.precharge_timeout_s",
        "power_path.precharge_retries",
        "power_path.ramp_down_timeout_s",
        "power_path.open_current_c",
        "power_path.welded_check_s",
        "power_path.precharge_min_s",
        "balancing.strategy",
        "balancing.threshold_v",
        "balancing.threshold_soc_pct",
        "balancing.min_cell_voltage_v",
        "balancing.always_allowed",
        "balancing.max_rest_current_c",
        "estimation.voltage_noise_v",
        "estimation.soc_process_noise",
        "estimation.rc_process_noise_v",
        "estimation.rest_current_c",
        "estimation.rest_time_s",
        "estimation.full_charge_current_c",
        "diagnosis.frozen_current_samples",
        "diagnosis.open_wire_period_s",
        "diagnosis.overcurrent_curve_s",
    }
)

HELP_LINES = (
    "help                 this list",
    "status               live values of the string",
    "cells                voltage, SoC and balancing of every series cell",
    f"events [N]           the last N events (default {DEFAULT_EVENT_COUNT})",
    "get                  every settable key with its value and allowed range",
    "get KEY              one setting, e.g. get balancing.threshold_soc_pct",
    "set KEY VALUE        change a setting within its range, e.g. set balancing.strategy voltage",
    "replies end with a line OK, OK ... or ERR ...",
)


class SerialPort(Protocol):
    """What the console needs of a pyserial port (``serial.Serial``, ``serial_for_url``)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...


class _HasSettings(Protocol):
    @property
    def settings(self) -> BmsSettings: ...


class _HasEvents(Protocol):
    @property
    def events(self) -> list[BmsEvent]: ...


class _HasSoc(Protocol):
    @property
    def soc(self) -> np.ndarray: ...


class _HasMask(Protocol):
    @property
    def mask(self) -> np.ndarray: ...


class ConsoleBms(Protocol):
    """What the console reads and changes of a ``StringBms``."""

    @property
    def config(self) -> _HasSettings: ...

    @property
    def state(self) -> BmsState | None: ...

    @property
    def log(self) -> _HasEvents: ...

    @property
    def estimator(self) -> _HasSoc: ...

    @property
    def balancer(self) -> _HasMask: ...

    @property
    def voltages(self) -> VoltageSample | None: ...

    def apply_settings(self, settings: BmsSettings) -> None: ...


@dataclass(frozen=True)
class Setting:
    """One leaf of ``BmsSettings``: its key, type and the range its pydantic Field allows."""

    key: str
    annotation: Any
    metadata: tuple[Any, ...]
    live: bool

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed strings of a Literal setting (empty for any other)."""
        args = [a for a in typing.get_args(self.annotation) if a is not type(None)]
        if typing.get_origin(self.annotation) is Literal:
            return tuple(str(a) for a in args)
        return ()

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.annotation)

    def describe(self) -> str:
        """The allowed values in words, e.g. ``number, 0 < value <= 20``."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        base = [a for a in (*typing.get_args(self.annotation), self.annotation) if a in _KINDS]
        kind = _KINDS[base[0]] if base else "value"
        if kind == "true or false":
            return kind
        bounds: dict[str, Any] = {}
        for item in self.metadata:
            for name in ("gt", "ge", "lt", "le"):
                if getattr(item, name, None) is not None:
                    bounds[name] = getattr(item, name)
        lower = [f"{bounds[n]:g} {sign} " for n, sign in (("gt", "<"), ("ge", "<=")) if n in bounds]
        upper = [f" {sign} {bounds[n]:g}" for n, sign in (("lt", "<"), ("le", "<=")) if n in bounds]
        if upper:
            text = f"{kind}, {''.join(lower)}value{upper[0]}"
        elif lower:  # "value > 0" reads better than "0 < value"
            number, sign = lower[0].split()
            text = f"{kind}, value {sign.replace('<', '>')} {number}"
        else:
            text = f"any {kind}"
        return text + (", or none" if self.optional else "")


_KINDS: dict[Any, str] = {bool: "true or false", int: "whole number", float: "number"}


def settings_table() -> dict[str, Setting]:
    """Every leaf setting of ``BmsSettings`` by dotted key, ranges from the model itself."""
    table: dict[str, Setting] = {}
    for group, field in BmsSettings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, leaf in model.model_fields.items():
            key = f"{group}.{name}"
            table[key] = Setting(key, leaf.annotation, tuple(leaf.metadata), key in LIVE_KEYS)
    return table


def format_value(value: Any) -> str:
    """A setting's value as the console shows and accepts it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


class SerialConsole:
    """The console of one string's BMS on one serial port; call ``poll`` from a BMS task."""

    def __init__(self, port: SerialPort, bms: ConsoleBms) -> None:
        self.port = port
        self.bms = bms
        self.setting_specs = settings_table()
        self.port_errors = 0  # reads and writes the port refused (the console carries on)
        self.last_port_error = ""
        self._line = bytearray()
        self._too_long = False
        self._bad_bytes = False
        self._commands: dict[str, Callable[[list[str], float], list[str]]] = {
            "help": self._help,
            "status": self._status,
            "cells": self._cells,
            "events": self._events,
            "get": self._get,
            "set": self._set,
        }

    # --- the port ------------------------------------------------------------------------
    def poll(self, now_s: float) -> int:
        """Read what has arrived, answer every complete line; returns the lines answered."""
        try:
            waiting = self.port.in_waiting
            data = self.port.read(min(waiting, MAX_READ_BYTES)) if waiting else b""
        except OSError as error:
            self._port_error(error)
            return 0
        answered = 0
        for byte in data:
            if byte in (CR, LF):  # CR LF is a line and an empty line, which gets no reply
                if self._finish_line(now_s):
                    answered += 1
            elif self._too_long:
                continue
            elif len(self._line) >= MAX_LINE_BYTES:
                self._too_long = True
                self._line.clear()
            else:
                self._line.append(byte)
                self._bad_bytes |= not (0x20 <= byte < 0x7F or byte == TAB)
        return answered

    def _finish_line(self, now_s: float) -> bool:
        line, too_long, bad = bytes(self._line), self._too_long, self._bad_bytes
        self._line.clear()
        self._too_long = self._bad_bytes = False
        if too_long:
            reply = [f"ERR line longer than {MAX_LINE_BYTES} bytes, discarded"]
        elif bad:
            reply = ["ERR line holds non-ASCII or control bytes, discarded"]
        elif not line.strip():
            return False  # empty lines get no reply
        else:
            reply = self.execute(line.decode("ascii"), now_s)
        self._send(reply)
        return True

    def _send(self, lines: list[str]) -> None:
        payload = "".join(line + EOL for line in lines).encode("ascii", "replace")
        try:
            self.port.write(payload)
        except OSError as error:
            self._port_error(error)

    def _port_error(self, error: OSError) -> None:
        self.port_errors += 1
        self.last_port_error = str(error)

    # --- the commands ----------------------------------------------------------------------
    def execute(self, line: str, now_s: float) -> list[str]:
        """The reply to one command line (its last line is ``OK...`` or ``ERR ...``)."""
        words = line.split()
        command = self._commands.get(words[0].lower()) if words else None
        if command is None:
            return [f"ERR unknown command {line.strip()[:40]!r}; 'help' lists the commands"]
        try:
            return command(words[1:], now_s)
        except Exception as error:  # a console fault must never stop the BMS task
            return [f"ERR internal error: {type(error).__name__}: {error}"]

    def _help(self, args: list[str], now_s: float) -> list[str]:
        return [*HELP_LINES, "OK"]

    def _status(self, args: list[str], now_s: float) -> list[str]:
        state = self.bms.state
        if state is None:
            return ["ERR no data yet: the BMS has not finished its first main task"]
        limits = state.limits
        values = {
            "time_s": f"{state.time_s:.3f}",
            "age_s": f"{now_s - state.time_s:.3f}",
            "path_state": state.path_state,
            "soc_pct": f"{state.soc_pct:.2f}",
            "soc_min_pct": f"{state.soc_min_pct:.2f}",
            "soc_max_pct": f"{state.soc_max_pct:.2f}",
            "capacity_soh_pct": f"{state.capacity_soh_pct:.2f}",
            "resistance_soh_pct": f"{state.resistance_soh_pct:.2f}",
            "pack_voltage_v": f"{state.pack_voltage_v:.3f}",
            "current_a": f"{state.current_a:.3f}",
            "cell_voltage_min_v": f"{state.cell_voltage_min_v:.4f}",
            "cell_voltage_max_v": f"{state.cell_voltage_max_v:.4f}",
            "temp_min_c": f"{state.temp_min_c:.2f}",
            "temp_max_c": f"{state.temp_max_c:.2f}",
            "limits.charge_current_a": f"{limits.charge_current_a:.3f}",
            "limits.discharge_current_a": f"{limits.discharge_current_a:.3f}",
            "limits.charge_voltage_v": f"{limits.charge_voltage_v:.3f}",
            "limits.discharge_voltage_v": f"{limits.discharge_voltage_v:.3f}",
            "balancing_cells": str(state.balancing_cells),
            "active_codes": ",".join(state.active_codes) or "none",
        }
        return [*(f"{key}={value}" for key, value in values.items()), "OK"]

    def _cells(self, args: list[str], now_s: float) -> list[str]:
        sample = self.bms.voltages
        if sample is None:
            return ["ERR no data yet: the BMS has not measured the cells"]
        voltage_v = sample.cell_voltage_v
        soc_pct = 100.0 * np.asarray(self.bms.estimator.soc, dtype=float)
        mask = self.bms.balancer.mask
        lines = ["cell voltage_v soc_pct balancing"]
        for index, volts in enumerate(voltage_v):
            volts_text = f"{volts:.4f}" if np.isfinite(volts) else "-"  # NaN: no data
            soc = f"{soc_pct[index]:.2f}" if np.isfinite(soc_pct[index]) else "-"
            lines.append(f"{index + 1} {volts_text} {soc} {'yes' if mask[index] else 'no'}")
        return [*lines, "OK"]

    def _events(self, args: list[str], now_s: float) -> list[str]:
        count = DEFAULT_EVENT_COUNT
        if len(args) > 1:
            return ["ERR usage: events [N]"]
        if args:
            if not args[0].isdigit() or not 1 <= int(args[0]) <= MAX_EVENT_COUNT:
                return [f"ERR events N: N={args[0][:20]} must be a whole number "
                        f"from 1 to {MAX_EVENT_COUNT}"]  # fmt: skip
            count = int(args[0])
        lines = [
            f"time_s={e.time_s:.3f} code={e.code} kind={e.kind} name={e.name}"
            for e in self.bms.log.events[-count:]
        ]
        return [*lines, "OK"]

    def _get(self, args: list[str], now_s: float) -> list[str]:
        current = self.bms.config.settings
        if not args:
            return [
                *(
                    f"{key}={format_value(_value_of(current, key))} ({setting.describe()})"
                    for key, setting in self.setting_specs.items()
                    if setting.live
                ),
                "OK",
            ]
        if len(args) > 1:
            return ["ERR usage: get [KEY]"]
        key = args[0].lower()
        setting = self.setting_specs.get(key)
        if setting is None:
            return [_unknown_key(args[0])]
        note = "" if setting.live else ", read-only while running"
        return [f"{key}={format_value(_value_of(current, key))} ({setting.describe()}{note})", "OK"]

    def _set(self, args: list[str], now_s: float) -> list[str]:
        if len(args) != 2:
            return ["ERR usage: set KEY VALUE"]
        key, raw = args[0].lower(), args[1]
        shown = raw[:40]
        setting = self.setting_specs.get(key)
        if setting is None:
            return [f"ERR {args[0][:60]}={shown} rejected: unknown key; 'get' lists the settable "
                    "keys and their ranges"]  # fmt: skip
        if not setting.live:
            return [f"ERR {key}={shown} refused: {key} is fixed when the BMS starts "
                    "(read-only while running)"]  # fmt: skip
        value: Any = raw
        if setting.optional and raw.lower() in ("none", "null"):
            value = None
        elif raw.lower() in setting.choices:
            value = raw.lower()
        group, name = key.split(".", 1)
        data = self.bms.config.settings.model_dump()
        data[group][name] = value
        try:
            updated = BmsSettings.model_validate(data)
        except ValidationError as error:
            reason = "; ".join(e["msg"] for e in error.errors())
            return [f"ERR {key}={shown} rejected: {reason} (allowed: {setting.describe()})"]
        new_value = _value_of(updated, key)
        if isinstance(new_value, float) and not math.isfinite(new_value):
            return [f"ERR {key}={shown} rejected: not a finite number "
                    f"(allowed: {setting.describe()})"]  # fmt: skip
        self.bms.apply_settings(updated)
        return [f"OK {key}={format_value(new_value)}"]


def _value_of(settings: BmsSettings, key: str) -> Any:
    group, name = key.split(".", 1)
    return getattr(getattr(settings, group), name)


def _unknown_key(key: str) -> str:
    return f"ERR unknown key {key[:60]!r}; 'get' lists the settable keys"
