"""The BMS side of the Elcon/TC-style charger CAN protocol (layout in ``dbc/charger.dbc``).

The BMS sends ``ChargerRequest`` (0x1806E5F4) every second with its voltage and current limits;
the charger answers with ``ChargerStatus`` (0x18FF50E5) every second and stops its output when
no request has arrived for 5 s. See docs/can-charger.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellwarden.comms.can_bus import Frame, FramePort, due
from cellwarden.comms.codec import BusCodec, FrameError, bus_codec

REQUEST = "ChargerRequest"
STATUS = "ChargerStatus"
CHARGER_TIMEOUT_S = 5.0  # the charger stops after this long without a request
SILENT_AFTER_S = 5.0  # the BMS counts the charger silent after this long without a status
CONTROL_CHARGE = 0
CONTROL_STOP = 1
STATUS_FLAGS = {  # ChargerStatus signal -> ChargerStatus field
    "Sts_HardwareFailure": "hardware_failure",
    "Sts_OverTemperature": "over_temperature",
    "Sts_InputVoltageWrong": "input_voltage_wrong",
    "Sts_StartingState": "battery_not_detected",
    "Sts_CommTimeout": "communication_timeout",
}


def charger_codec() -> BusCodec:
    """The codecs of every charger-bus message."""
    return bus_codec("charger")


@dataclass(frozen=True)
class ChargerStatus:
    """The charger's last ``ChargerStatus`` frame and when the BMS received it."""

    time_s: float
    output_voltage_v: float
    output_current_a: float
    hardware_failure: bool
    over_temperature: bool
    input_voltage_wrong: bool
    battery_not_detected: bool
    communication_timeout: bool

    @property
    def failed(self) -> bool:
        """The charger reports a fault of its own (it does not charge while one is set)."""
        return self.hardware_failure or self.over_temperature or self.input_voltage_wrong


class CanChargerLink:
    """``ChargerLink`` over CAN: call ``request``/``stop`` any time and ``tick`` at least every
    100 ms. The last request goes out every second (stopped until the first ``request``); a
    change to stop goes out at the next tick. Frames that do not decode are counted and ignored.
    """

    def __init__(self, port: FramePort) -> None:
        self.port = port
        codecs = charger_codec()
        self._request = codecs[REQUEST]
        self._status = codecs[STATUS]
        self.period_s = self._request.cycle_s
        self.voltage_v = 0.0
        self.current_a = 0.0
        self.charging = False
        self.status: ChargerStatus | None = None
        self.decode_errors = 0
        self.requests_sent = 0
        self._last_sent_s: float | None = None
        self._stop_pending = False
        self._started_s: float | None = None
        self._now_s: float | None = None

    # --- ChargerLink ---------------------------------------------------------------------------
    def request(self, voltage_v: float, current_a: float) -> None:
        """Charge up to ``voltage_v`` with at most ``current_a``."""
        self.voltage_v = voltage_v
        self.current_a = max(0.0, current_a)
        self.charging = True

    def stop(self) -> None:
        """Stop charging (control = stop, zero current)."""
        self._stop_pending = self._stop_pending or self.charging
        self.charging = False
        self.current_a = 0.0

    # --- the task --------------------------------------------------------------------------
    def tick(self, now_s: float) -> None:
        """Read the charger's status frames, then send the request if it is due."""
        if self._started_s is None:
            self._started_s = now_s
        self._now_s = now_s
        for frame in self.port.receive():
            self._read(now_s, frame)
        if self._stop_pending or due(now_s, self._last_sent_s, self.period_s):
            self._send(now_s)

    def present(self) -> bool:
        """A charger is connected and talking."""
        return self.status is not None and not self.silent

    @property
    def silent(self) -> bool:
        """No status from the charger for more than 5 s (counted from the first tick)."""
        if self._now_s is None or self._started_s is None:
            return False
        seen_s = self.status.time_s if self.status is not None else self._started_s
        return self._now_s - seen_s > SILENT_AFTER_S

    def _send(self, now_s: float) -> None:
        codec = self._request
        values = {
            "Req_MaxChargeVoltage": self.voltage_v,
            "Req_MaxChargeCurrent": self.current_a if self.charging else 0.0,
            "Req_Control": CONTROL_CHARGE if self.charging else CONTROL_STOP,
        }
        data = codec.encode(values)
        self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))
        self.requests_sent += 1
        self._last_sent_s = now_s
        self._stop_pending = False

    def _read(self, now_s: float, frame: Frame) -> None:
        codec = self._status
        if frame.frame_id != codec.frame_id or frame.extended != codec.extended:
            return  # another node's traffic
        try:
            values = codec.decode(frame.data).values
            flags = {
                field: codec.raw(signal, values[signal]) != 0
                for signal, field in STATUS_FLAGS.items()
            }
            self.status = ChargerStatus(
                time_s=now_s,
                output_voltage_v=float(values["Sts_OutputVoltage"]),
                output_current_a=float(values["Sts_OutputCurrent"]),
                **flags,
            )
        except (FrameError, KeyError, TypeError, ValueError):
            self.decode_errors += 1
