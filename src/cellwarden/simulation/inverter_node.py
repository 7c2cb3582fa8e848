"""The inverter/charger (PCS) as a node on the inverter CAN in simulation.

It reads the BMS's limits (0x351) and request flags (0x35C) and hands them to the plant: the
discharge and charge current limits to the load, the charge voltage and current limits to the
charger; a direction whose enable flag is cleared gets 0 A. When no 0x351 has arrived for
``bms_timeout_s`` it stops both ways, as a Victron system does when it loses its BMS, and it
sends its 0x305 keep-alive every second unless ``silent``. See docs/can-inverter.md.
"""

from __future__ import annotations

import math

from cellwarden.comms.can_bus import CLOCK_EPS_S, Frame, FramePort, due
from cellwarden.comms.codec import FrameError
from cellwarden.comms.inverter_can import KEEPALIVE, LIMITS, REQUEST, inverter_codec
from cellwarden.plant.charger import ChargerSetpoints
from cellwarden.plant.system_plant import SystemPlant

BMS_TIMEOUT_S = 3.0  # without a 0x351 for this long the inverter stops charging and discharging


class SimulatedInverter:
    """Call ``tick`` at least once a second of simulated time.

    An inverter that ``ignores_limits`` (a broken one) applies unlimited current both ways, but
    only while it hears the BMS: it still waits for the first 0x351 and still stops when the
    BMS falls silent. ``silent`` (set by fault injection) stops its keep-alive.
    """

    def __init__(
        self,
        port: FramePort,
        plant: SystemPlant,
        ignores_limits: bool,
        bms_timeout_s: float = BMS_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.plant = plant
        self.ignores_limits = ignores_limits
        self.bms_timeout_s = bms_timeout_s
        codecs = inverter_codec()
        self._limits = codecs[LIMITS]
        self._request = codecs[REQUEST]
        self._keepalive = codecs[KEEPALIVE]
        self.period_s = self._keepalive.cycle_s
        self.silent = False
        self.decode_errors = 0
        self.charge_voltage_v = plant.branch_max_voltage_v  # as last heard
        self.charge_current_a = 0.0
        self.discharge_current_a = 0.0
        self.charge_enable = False
        self.discharge_enable = False
        self.limits_s: float | None = None  # when the last valid 0x351 arrived
        self._last_sent_s: float | None = None
        self._now_s: float | None = None
        self._stop()

    @property
    def bms_valid(self) -> bool:
        """A valid 0x351 arrived within ``bms_timeout_s`` (as of the last tick)."""
        return (
            self._now_s is not None
            and self.limits_s is not None
            and self._now_s - self.limits_s <= self.bms_timeout_s + CLOCK_EPS_S
        )

    def tick(self, now_s: float) -> None:
        """Take the BMS's frames, apply its limits (or stop), and send the keep-alive if due."""
        self._now_s = now_s
        for frame in self.port.receive():
            self._read(now_s, frame)
        if not self.bms_valid:
            self._stop()
        elif self.ignores_limits:
            self.plant.set_load_limits(math.inf, math.inf)
            self.plant.set_charger_request(ChargerSetpoints(math.inf, math.inf))
        else:
            charge_a = self.charge_current_a if self.charge_enable else 0.0
            discharge_a = self.discharge_current_a if self.discharge_enable else 0.0
            self.plant.set_load_limits(discharge_a, charge_a)
            self.plant.set_charger_request(ChargerSetpoints(self.charge_voltage_v, charge_a))
        if not self.silent and due(now_s, self._last_sent_s, self.period_s):
            codec = self._keepalive
            self.port.send(Frame(now_s, codec.frame_id, codec.encode({}), codec.extended))
            self._last_sent_s = now_s

    def _read(self, now_s: float, frame: Frame) -> None:
        if frame.extended or frame.frame_id not in (self._limits.frame_id, self._request.frame_id):
            return
        try:
            if frame.frame_id == self._limits.frame_id:
                values = self._limits.decode(frame.data).values
                limits = [
                    float(values[name])
                    for name in ("Lim_ChargeVoltage", "Lim_ChargeCurrent", "Lim_DischargeCurrent")
                ]
            else:
                codec = self._request
                values = codec.decode(frame.data).values
                flags = [
                    codec.raw(name, values[name]) == 1
                    for name in ("Req_ChargeEnable", "Req_DischargeEnable")
                ]
        except (FrameError, KeyError, TypeError, ValueError):
            self.decode_errors += 1
            return
        if frame.frame_id == self._limits.frame_id:
            voltage_v, charge_a, discharge_a = limits
            if voltage_v > 0.0:  # a zero charge voltage limit is invalid: keep the last one
                self.charge_voltage_v = voltage_v
            self.charge_current_a = max(charge_a, 0.0)
            self.discharge_current_a = max(discharge_a, 0.0)
            self.limits_s = now_s
        else:
            self.charge_enable, self.discharge_enable = flags

    def _stop(self) -> None:
        self.plant.set_load_limits(0.0, 0.0)
        self.plant.set_charger_request(ChargerSetpoints(self.charge_voltage_v, 0.0))
