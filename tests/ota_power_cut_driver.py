"""A simulated device run in its own process, killed (SIGKILL) at a named step of an update.

``python -m tests.ota_power_cut_driver DIR BUNDLE STEP N``: boots the device in DIR over the
e-scooter scenario, installs BUNDLE when the device is not already updating, and kills itself
when STEP completes for the N-th time (STEP ``none``: runs to the end and prints, as JSON, the
steps it saw and the agent's last result).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from cellwarden.edge.ota_agent import AgentSettings
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.ota_device import SimulatedDevice

SETTINGS = AgentSettings(idle_hold_s=5.0, health_window_s=10.0)
RUN_S = 400.0


def main(directory: Path, bundle: Path, kill_step: str, kill_count: int) -> None:
    seen: list[str] = []

    def step(name: str) -> None:
        seen.append(name)
        if name == kill_step and seen.count(name) == kill_count:
            os.kill(os.getpid(), signal.SIGKILL)

    device = SimulatedDevice(load_builtin("escooter-13s-urban"), directory, settings=SETTINGS,
                             clock_epoch_s=time.time(), on_step=step)  # fmt: skip
    device.run_until(1.0)
    if device.agent.phase == "idle" and device.agent.state.get("last_result") is None:
        device.agent.install_file(bundle, device.now_s)
    device.run_until(RUN_S)
    agent = device.agent
    print(json.dumps({
        "steps": seen, "phase": agent.phase, "last_result": agent.state.get("last_result"),
        "slot": agent.booted.slot, "version": agent.running_version,
        "boot_error": device.bms.boot_error(), "resets": device.bms.resets,
    }))  # fmt: skip
    device.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
