"""The vehicle controller (or inverter) as a CAN node on the external bus in simulation.

It reads the BMS's ``BMS_State`` (ready) and ``BMS_CurrentLimits`` frames and hands them to the
plant's load as the direct link does; it falls back to zero limits when either frame has not
arrived for 0.5 s or its last frame failed the E2E check, and it sends ``VCU_Command`` (its
connect request) every 100 ms.
"""

from __future__ import annotations

from cellwarden.comms.can_bus import Frame, FramePort, due
from cellwarden.comms.codec import FrameError
from cellwarden.comms.e2e import AliveCheck, AliveCounters
from cellwarden.comms.external_can import (
    BMS_TIMEOUT_S,
    COMMAND,
    CURRENT_LIMITS,
    STATE,
    external_codec,
)
from cellwarden.hardware.sim_links import SimulatedLoadLink
from cellwarden.plant.system_plant import SystemPlant

_WATCHED = (STATE, CURRENT_LIMITS)


class SimulatedVehicleController:
    """Call ``tick`` at least every 100 ms of simulated time; ``connect_request`` is its key.

    Ticked more slowly, raise ``bms_timeout_s`` above the tick period.
    """

    def __init__(
        self,
        port: FramePort,
        plant: SystemPlant,
        ignores_limits: bool,
        bms_timeout_s: float = BMS_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.bms_timeout_s = bms_timeout_s
        self.load = SimulatedLoadLink(plant, ignores_limits)
        codecs = external_codec()
        self._codecs = {codecs[name].frame_id: codecs[name] for name in _WATCHED}
        self._command = codecs[COMMAND]
        self.period_s = self._command.cycle_s
        self.connect_request = True
        self.decode_errors = 0
        self.ready = False
        self.discharge_a = 0.0
        self.regen_a = 0.0
        self._seen_s: dict[int, float] = {}
        self._alive = {frame_id: AliveCheck() for frame_id in self._codecs}
        self._alive_out = AliveCounters()
        self._last_sent_s: float | None = None
        self._now_s = 0.0
        self.load.publish(0.0, 0.0, False)  # nothing heard from the BMS yet

    @property
    def bms_valid(self) -> bool:
        """Whether the last state and limit frames are fresh and passed their checks."""
        now_s = self._now_s
        return all(
            frame_id in self._seen_s and now_s - self._seen_s[frame_id] <= self.bms_timeout_s
            for frame_id in self._codecs
        )

    def tick(self, now_s: float) -> None:
        """Take the BMS's frames, apply the limits, and send the command when it is due."""
        self._now_s = now_s
        for frame in self.port.receive():
            self._read(now_s, frame)
        if self.bms_valid:
            self.load.publish(self.discharge_a, self.regen_a, self.ready)
        else:
            self.load.publish(0.0, 0.0, False)
        if due(now_s, self._last_sent_s, self.period_s):
            self._send(now_s)

    def _read(self, now_s: float, frame: Frame) -> None:
        codec = self._codecs.get(frame.frame_id)
        if codec is None or frame.extended != codec.extended:
            return
        try:
            values = codec.decode_checked(frame.data, self._alive[codec.frame_id]).values
            if codec.name == STATE:
                ready = codec.raw("State_Ready", values["State_Ready"]) == 1
            else:
                discharge_a = float(values["Lim_MaxDischargeCurrent"])
                regen_a = float(values["Lim_MaxChargeCurrent"])
        except (FrameError, KeyError, TypeError, ValueError):
            self.decode_errors += 1
            self._seen_s.pop(frame.frame_id, None)  # a bad frame drops the limits at once
            return
        if codec.name == STATE:
            self.ready = ready
        else:
            self.discharge_a, self.regen_a = discharge_a, regen_a
        self._seen_s[frame.frame_id] = now_s

    def _send(self, now_s: float) -> None:
        codec = self._command
        data = codec.encode(
            {"Veh_ConnectRequest": int(self.connect_request)},
            alive=self._alive_out.next(self._command.frame_id),
        )
        self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))
        self._last_sent_s = now_s
