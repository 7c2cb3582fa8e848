"""A simulated power-path driver: the BMS's switch commands onto the plant's switches."""

from __future__ import annotations

from cellwarden.hardware.interfaces import PathCommand, PathFeedback
from cellwarden.model.architecture import PowerPathKind
from cellwarden.plant.power_path import SwitchStates
from cellwarden.plant.system_plant import SystemPlant


class SimulatedPowerPath:
    """Contactors (negative, positive, precharge) or back-to-back MOSFETs with precharge."""

    def __init__(self, plant: SystemPlant, string: int) -> None:
        self.plant = plant
        self.string = string
        self.kind = plant.power_paths[string].spec.kind.value
        self._command = PathCommand(charge=False, discharge=False)

    def command(self, command: PathCommand) -> None:
        self._command = command
        if self.kind == PowerPathKind.CONTACTORS.value:
            states = SwitchStates(
                negative=command.negative or command.precharge or command.main,
                positive=command.main,
                precharge=command.precharge,
            )
        else:
            states = SwitchStates(
                precharge=command.precharge,
                charge=command.main and command.charge,
                discharge=command.main and command.discharge,
            )
        self.plant.set_switches(self.string, states)

    def feedback(self) -> PathFeedback:
        """Auxiliary contacts follow the armature: a welded contactor reports closed."""
        path = self.plant.power_paths[self.string]
        main = self._command.main or (path.welded and self.kind == PowerPathKind.CONTACTORS.value)
        return PathFeedback(
            precharge_closed=self._command.precharge,
            main_closed=main,
            short_circuit_tripped=self.plant.short_circuit_tripped(self.string),
        )
