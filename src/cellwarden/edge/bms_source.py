"""What the edge reads of a running BMS: pack summaries, per-cell data, events and the DTC memory.

It reads only what the BMS publishes (its state, its last measurements, its event logs), the
same whether the BMS runs against the simulated plant or against a real board. A multi-master
system reports the system master's view; a single string its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellwarden.bms.alarms import classify, to_mask, worst_code
from cellwarden.bms.event_log import BmsEvent, BmsEventLog
from cellwarden.bms.power_path import PathState
from cellwarden.bms.string_bms import StringBms
from cellwarden.bms.system_state import SystemState
from cellwarden.telemetry.schema import PATH_STATES

Record = dict[str, Any]


class BmsTelemetry:
    """Telemetry records from the string BMSs and, when there is one, the system master."""

    def __init__(
        self,
        strings: Sequence[StringBms],
        names: Sequence[str],
        system_state: Any = None,
        system_log: BmsEventLog | None = None,
    ) -> None:
        """``system_state`` is a callable returning the system master's last ``SystemState``."""
        self.strings = list(strings)
        self.names = list(names)
        self._system_state = system_state
        self._events: list[Record] = []
        for name, bms in zip(self.names, self.strings, strict=True):
            bms.log.listeners.append(self._listener(name))
        if system_log is not None:
            system_log.listeners.append(self._listener("system"))

    @classmethod
    def of(cls, controller: Any) -> BmsTelemetry:
        """From the simulation's closed-loop controller."""
        node = controller.system_master
        return cls(
            controller.bms,
            [n.name for n in controller.nodes],
            (lambda: node.state) if node is not None else None,
            node.master.log if node is not None else None,
        )

    def _listener(self, source: str):
        def listen(event: BmsEvent) -> None:
            self._events.append(event_record(source, event))

        return listen

    def drain_events(self) -> list[Record]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def summary(self, now_s: float) -> Record | None:
        """The pack summary now (None before the BMS has measured)."""
        if self._system_state is not None:
            state = self._system_state()
            return None if state is None else _system_summary(now_s, state)
        bms = self.strings[0]
        state = bms.state
        if state is None:
            return None
        alarms, warnings = classify(state.active_codes, bms.protection.rules)
        return {
            "time_s": now_s,
            "soc_pct": state.soc_pct,
            "soh_pct": state.capacity_soh_pct,
            "voltage_v": state.pack_voltage_v,
            "current_a": state.current_a,
            "cell_voltage_min_v": state.cell_voltage_min_v,
            "cell_voltage_max_v": state.cell_voltage_max_v,
            "temp_min_c": state.temp_min_c,
            "temp_max_c": state.temp_max_c,
            "charge_current_limit_a": state.limits.charge_current_a,
            "discharge_current_limit_a": state.limits.discharge_current_a,
            "charge_voltage_limit_v": state.limits.charge_voltage_v,
            "path_state": PATH_STATES.index(state.path_state),
            "alarms": to_mask(alarms),
            "warnings": to_mask(warnings),
            "worst_code": worst_code(state.active_codes, bms.protection.rules),
            "balancing_cells": state.balancing_cells,
            "strings_connected": int(state.path_state == PathState.NORMAL.value),
        }

    def cells(self, now_s: float) -> Record | None:
        """Every cell's voltage, temperature and balancing switch, strings one after another."""
        samples = [bms.voltages for bms in self.strings]
        if any(sample is None for sample in samples):
            return None
        return {
            "time_s": now_s,
            "voltage_v": np.concatenate([s.cell_voltage_v for s in samples]).tolist(),
            "temp_c": np.concatenate([bms.cell_temp_c for bms in self.strings]).tolist(),
            "balancing": np.concatenate([bms.balancer.mask for bms in self.strings]).tolist(),
        }

    def discharge_power_w(self) -> float:
        """Power leaving the pack now (0 while charging or idle), as the BMS measures it."""
        power = sum(
            -bms.current_a * bms.pack_voltage_v for bms in self.strings if bms.state is not None
        )
        return max(0.0, power)

    def dtc_memory(self, limit: int = 50) -> Record:
        """Active and latched codes per string and the latest trips with their freeze frames."""
        strings = []
        for name, bms in zip(self.names, self.strings, strict=True):
            trips = [e for e in bms.log.events if e.kind == "trip"][-limit:]
            strings.append(
                {
                    "string": name,
                    "active": list(bms.protection.status().active_codes),
                    "trips": [event_record(name, e) for e in trips],
                }
            )
        return {"strings": strings}

    def clear_latched(self, now_s: float) -> list[str]:
        """Reset latched (not locked) protections on every string, as a service tool does."""
        cleared: list[str] = []
        for bms in self.strings:
            cleared += bms.protection.reset_latches(now_s)
        return cleared


def _system_summary(now_s: float, state: SystemState) -> Record:
    return {
        "time_s": now_s,
        "soc_pct": state.soc_pct,
        "soh_pct": state.soh_pct,
        "voltage_v": state.voltage_v,
        "current_a": state.current_a,
        "cell_voltage_min_v": state.cell_voltage_min_v,
        "cell_voltage_max_v": state.cell_voltage_max_v,
        "temp_min_c": state.temp_min_c,
        "temp_max_c": state.temp_max_c,
        "charge_current_limit_a": state.charge_current_limit_a,
        "discharge_current_limit_a": state.discharge_current_limit_a,
        "charge_voltage_limit_v": state.charge_voltage_limit_v,
        "path_state": PATH_STATES.index("normal" if state.connected else "standby"),
        "alarms": to_mask(state.alarms),
        "warnings": to_mask(state.warnings),
        "worst_code": max((v.report.worst_code for v in state.strings if v.report), default=0),
        "balancing_cells": sum(v.report.balancing_cells for v in state.strings if v.report),
        "strings_connected": state.strings_connected,
    }


def event_record(source: str, event: BmsEvent) -> Record:
    """An event as telemetry carries it."""
    return {
        "time_s": event.time_s,
        "source": source,
        "code": event.code,
        "name": event.name,
        "kind": event.kind,
        "value": None if math.isnan(event.value) else event.value,
        "action": event.action,
        "freeze_frame": plain(event.freeze_frame),
    }


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays, tuples and odd types made CBOR/JSON-friendly."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
