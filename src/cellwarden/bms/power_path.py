"""Power-path sequencing: standby → precharge → normal, per-direction enable, ramp-down before
opening, emergency opening, welded-switch detection and recovery.

Contactors close in the order negative → precharge → positive → precharge open. With only the
negative closed, a link that jumps towards the pack voltage means the positive is welded (the
voltage across it is gone). A dead link that charges faster than ``precharge_min_s`` has lost
its capacitor (or its measurement); a link that never charges sits on a short. Either fails
the attempt; after the retries the path stays open. Contactors conduct both ways, so a path
opened on charge current the BMS forbade stays open while that charger is still connected.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from cellwarden.bms.event_log import BmsEventLog
from cellwarden.hardware.interfaces import OPEN, PathCommand, PowerPath
from cellwarden.model.bms import PowerPathSettings

RETRY_PAUSE_S = 1.0  # between precharge attempts
RECLOSE_DELAY_S = 5.0  # after an opening, before closing again
DEAD_LINK_SHARE = 0.5  # a link below this share of the pack voltage counts as discharged
WELD_RISE_SHARE = 0.2  # with only the negative closed, a rise this large: positive welded


class PathState(StrEnum):
    STANDBY = "standby"
    PRECHARGE = "precharge"
    NORMAL = "normal"
    OPENING = "opening"
    FAULT = "fault"


class PathInputs(NamedTuple):
    """What the sequencer needs each protection tick."""

    want_closed: bool  # the BMS wants the pack connected (no protection says otherwise)
    emergency_open: bool  # the table says open now, even under load
    charge_allowed: bool
    discharge_allowed: bool
    pack_voltage_v: float
    link_voltage_v: float
    current_a: float
    charger_present: bool = False  # a charger is connected (False where the BMS cannot tell)


class PowerPathSequencer:
    """Drives one string's power path through its states."""

    def __init__(
        self,
        driver: PowerPath,
        settings: PowerPathSettings,
        capacity_ah: float,
        log: BmsEventLog,
    ) -> None:
        self.driver = driver
        self.log = log
        self.contactors = driver.kind == "contactors"
        self.capacity_ah = capacity_ah
        self.configure(settings)
        self.state = PathState.STANDBY
        self._since_s = 0.0
        self._attempts = 0
        self._opened_at_s: float | None = None
        self._forbidden_since_s: float | None = None
        self.precharge_failed = False
        self.welded = False
        self._negative_only = False  # contactors: the negative closed, checking the positive
        self._charge_refused = False  # opened on charge current the BMS forbade
        self._start_link_v = 0.0
        self._command = OPEN
        self._handlers = {  # what each state does on a protection tick
            PathState.STANDBY: self._standby,
            PathState.PRECHARGE: self._precharge,
            PathState.NORMAL: self._normal,
            PathState.OPENING: self._opening,
            PathState.FAULT: self._fault,
        }
        driver.command(OPEN)

    def configure(self, settings: PowerPathSettings) -> None:
        """Take (new) settings; the currents they give as C-rates follow."""
        self.settings = settings
        self.open_current_a = settings.open_current_c * self.capacity_ah
        self.precharge_current_a = settings.precharge_done_current_c * self.capacity_ah

    @property
    def closed(self) -> bool:
        return self.state in (PathState.NORMAL, PathState.OPENING)

    def _go(self, now_s: float, state: PathState) -> None:
        self.log.info(now_s, "PATH", f"power path {self.state.value} -> {state.value}")
        self.state = state
        self._since_s = now_s

    def _send(self, command: PathCommand) -> None:
        if command != self._command:
            self._command = command
            self.driver.command(command)

    def _open(self, now_s: float, state: PathState) -> None:
        self._send(OPEN)
        self._opened_at_s = now_s
        self._go(now_s, state)

    def step(self, now_s: float, inputs: PathInputs) -> None:
        """Advance the state machine by one protection tick."""
        self._watch_for_welding(now_s, inputs)
        if inputs.emergency_open and self.state not in (PathState.STANDBY, PathState.FAULT):
            self._open(now_s, PathState.FAULT)
            return
        self._handlers[self.state](now_s, inputs)

    def _standby(self, now_s: float, inputs: PathInputs) -> None:
        if inputs.charge_allowed or not inputs.charger_present:
            self._charge_refused = False
        if self._charge_refused:
            return  # a charger that ignored the stop is still there: stay open
        if not inputs.want_closed or inputs.emergency_open or self.welded:
            return
        pause = RETRY_PAUSE_S if self._attempts else 0.0
        if self._opened_at_s is not None and self._attempts == 0:
            pause = RECLOSE_DELAY_S
        if self._opened_at_s is not None and now_s - self._opened_at_s < pause:
            return
        self._attempts += 1
        self._start_link_v = inputs.link_voltage_v
        self._negative_only = self.contactors
        self._send(PathCommand(negative=True) if self.contactors else PathCommand(precharge=True))
        self._go(now_s, PathState.PRECHARGE)

    def _precharge(self, now_s: float, inputs: PathInputs) -> None:
        if self._negative_only:
            self._negative_only = False
            rise_v = inputs.link_voltage_v - self._start_link_v
            if rise_v > WELD_RISE_SHARE * inputs.pack_voltage_v:
                self.welded = True
                self.log.info(now_s, "PATH", "link live with only the negative closed: "
                              "positive contactor welded")  # fmt: skip
                self._open(now_s, PathState.FAULT)
                return
            self._start_link_v = inputs.link_voltage_v
            self._send(PathCommand(negative=True, precharge=True))
            self._since_s = now_s
            return
        if self._link_charged(inputs) and abs(inputs.current_a) <= self.precharge_current_a:
            if self._too_fast(now_s, inputs):
                self.log.info(now_s, "PATH", "link charged too fast: DC-link capacitor missing")
                self._fail_attempt(now_s)
                return
            self._send(
                PathCommand(
                    negative=self.contactors,
                    precharge=self.contactors,  # opened on the next tick, once positive is in
                    main=True,
                    charge=inputs.charge_allowed,
                    discharge=inputs.discharge_allowed,
                )
            )
            self._attempts = 0
            self._go(now_s, PathState.NORMAL)
            return
        if now_s - self._since_s >= self.settings.precharge_timeout_s:
            self._fail_attempt(now_s)

    def _too_fast(self, now_s: float, inputs: PathInputs) -> bool:
        was_dead = self._start_link_v < DEAD_LINK_SHARE * inputs.pack_voltage_v
        return was_dead and now_s - self._since_s < self.settings.precharge_min_s

    def _fail_attempt(self, now_s: float) -> None:
        self._send(OPEN)
        self._opened_at_s = now_s
        if self._attempts > self.settings.precharge_retries:
            self.precharge_failed = True
            self._go(now_s, PathState.FAULT)
        else:
            self._go(now_s, PathState.STANDBY)

    def _link_charged(self, inputs: PathInputs) -> bool:
        """The link is close to the pack voltage, or above it (a charger holds it up)."""
        window_v = self.settings.precharge_done_pct / 100.0 * inputs.pack_voltage_v
        return inputs.link_voltage_v >= inputs.pack_voltage_v - window_v

    def _normal(self, now_s: float, inputs: PathInputs) -> None:
        if not inputs.want_closed:
            self._go(now_s, PathState.OPENING)
            return
        if not self.contactors:
            # MOSFETs switch each direction on its own; a link that sagged while discharge was
            # off is precharged again before the discharge FET closes onto it
            reopening = inputs.discharge_allowed and not self._command.discharge
            if reopening and not self._link_charged(inputs):
                self._send(PathCommand(precharge=True))
                self._go(now_s, PathState.PRECHARGE)
                return
            self._send(
                PathCommand(
                    main=True, charge=inputs.charge_allowed, discharge=inputs.discharge_allowed
                )
            )
            return
        if self._command.precharge:
            self._send(PathCommand(negative=True, main=True))  # positive is in: precharge out
        forbidden = (inputs.current_a > self.open_current_a and not inputs.charge_allowed) or (
            inputs.current_a < -self.open_current_a and not inputs.discharge_allowed
        )
        if not forbidden:
            self._forbidden_since_s = None
            return
        if self._forbidden_since_s is None:
            self._forbidden_since_s = now_s
        if now_s - self._forbidden_since_s >= self.settings.ramp_down_timeout_s:
            self._forbidden_since_s = None
            self._charge_refused = inputs.current_a > 0.0
            self._open(now_s, PathState.STANDBY)

    def _opening(self, now_s: float, inputs: PathInputs) -> None:
        stopped = abs(inputs.current_a) <= self.open_current_a
        if stopped or now_s - self._since_s >= self.settings.ramp_down_timeout_s:
            self._open(now_s, PathState.STANDBY)

    def _fault(self, now_s: float, inputs: PathInputs) -> None:
        if inputs.want_closed and not inputs.emergency_open and not self.precharge_failed:
            self._go(now_s, PathState.STANDBY)

    def _watch_for_welding(self, now_s: float, inputs: PathInputs) -> None:
        """Opened but current still flows, or the auxiliary contact says closed: welded."""
        fully_open = not (self._command.main or self._command.precharge)
        if self.welded or self._opened_at_s is None or not fully_open:
            return
        if now_s - self._opened_at_s < self.settings.welded_check_s:
            return
        feedback = self.driver.feedback()
        flowing = abs(inputs.current_a) > self.open_current_a and not feedback.short_circuit_tripped
        if feedback.main_closed or flowing:
            self.welded = True
            self.log.info(now_s, "PATH", "power path stays closed after an open command")

    def reset(self) -> None:
        """Service reset: forget a failed precharge (a welded switch needs repair)."""
        self.precharge_failed = False
        self._attempts = 0
