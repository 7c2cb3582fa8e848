"""The charger as a CAN node in simulation: it speaks the Elcon/TC-style protocol of
``dbc/charger.dbc`` and drives the plant's charger with what it hears.

A charger in CAN mode gives no output until it hears a request, follows each request, stops
when the BMS says stop or falls silent for 5 s, and reports its output every second. A charger
that ignores limits is modelled in the plant (plant/charger.py), not here.
"""

from __future__ import annotations

from cellwarden.comms.can_bus import Frame, FramePort, due
from cellwarden.comms.charger_can import (
    CHARGER_TIMEOUT_S,
    REQUEST,
    STATUS,
    charger_codec,
)
from cellwarden.comms.codec import FrameError
from cellwarden.plant.charger import ChargerSetpoints
from cellwarden.plant.system_plant import SystemPlant

BATTERY_DETECT_FRACTION = 0.5  # of the nominal voltage: below it the charger sees no battery


class SimulatedCanCharger:
    """Call ``tick`` at least every 100 ms of simulated time."""

    def __init__(self, port: FramePort, plant: SystemPlant) -> None:
        self.port = port
        self.plant = plant
        codecs = charger_codec()
        self._request = codecs[REQUEST]
        self._status = codecs[STATUS]
        self.period_s = self._status.cycle_s
        self.hardware_failure = False  # set by a test or a fault: the charger stops and says so
        self.over_temperature = False
        self.input_voltage_wrong = False
        self.decode_errors = 0
        self.timed_out = False
        self.last_request: ChargerSetpoints | None = None  # None: stopped
        self._last_request_s: float | None = None
        self._started_s: float | None = None
        self._last_status_s: float | None = None
        self._stop()

    @property
    def failed(self) -> bool:
        return self.hardware_failure or self.over_temperature or self.input_voltage_wrong

    def tick(self, now_s: float) -> None:
        """Apply the requests that arrived, time out, and send the status when it is due.

        Unplugged (the duty profile has no charger on the bus), it neither hears nor talks."""
        if not self.plant.charger_plugged_in:
            self.port.receive()
            self._started_s = self._last_request_s = self._last_status_s = None
            self.last_request = None
            return
        if self._started_s is None:
            self._started_s = now_s
        for frame in self.port.receive():
            self._read(now_s, frame)
        heard_s = self._last_request_s if self._last_request_s is not None else self._started_s
        if not self.timed_out and now_s - heard_s >= CHARGER_TIMEOUT_S:
            self.timed_out = True
            self.last_request = None
        self._apply()
        if due(now_s, self._last_status_s, self.period_s):
            self._send_status(now_s)

    def _read(self, now_s: float, frame: Frame) -> None:
        codec = self._request
        if frame.frame_id != codec.frame_id or frame.extended != codec.extended:
            return
        try:
            values = codec.decode(frame.data).values
            control = codec.raw("Req_Control", values["Req_Control"])
            voltage_v = float(values["Req_MaxChargeVoltage"])
            current_a = float(values["Req_MaxChargeCurrent"])
        except (FrameError, KeyError, TypeError, ValueError):
            self.decode_errors += 1
            return
        self._last_request_s = now_s
        self.timed_out = False
        # control 0 charges; 1 (or any value the protocol does not define) stops
        self.last_request = ChargerSetpoints(voltage_v, current_a) if control == 0 else None

    def _apply(self) -> None:
        if self.last_request is None or self.failed:
            self._stop()
        else:
            self.plant.set_charger_request(self.last_request)

    def _stop(self) -> None:
        self.plant.set_charger_request(ChargerSetpoints(self.plant.branch_max_voltage_v, 0.0))

    def _send_status(self, now_s: float) -> None:
        plant = self.plant
        voltage_v = plant.bus_voltage_v
        detected = voltage_v >= BATTERY_DETECT_FRACTION * plant.branch_nominal_voltage_v
        codec = self._status
        values = {
            "Sts_OutputVoltage": voltage_v,
            "Sts_OutputCurrent": max(0.0, plant.charger_current_a),
            "Sts_HardwareFailure": int(self.hardware_failure),
            "Sts_OverTemperature": int(self.over_temperature),
            "Sts_InputVoltageWrong": int(self.input_voltage_wrong),
            "Sts_StartingState": int(not detected),
            "Sts_CommTimeout": int(self.timed_out),
        }
        data = codec.encode(values)
        self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))
        self._last_status_s = now_s
