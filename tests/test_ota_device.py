"""A simulated board updating itself: the new slot's configuration reaches the BMS, a slot
that fails its health check rolls back by itself, the switch waits for a safe moment (judged
against the plant's true current), and the power path is open while the board resets."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
from tests.ota_support import GOOD_CONFIG, firmware_image, make_bundle, provision_device

from cellwarden.edge.ota_agent import AgentSettings
from cellwarden.edge.ota_client import Offer
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.ota_device import BOOT_S, SimulatedDevice

SETTINGS = AgentSettings(idle_current_a=1.0, idle_hold_s=20.0, health_window_s=15.0)


def device_with_bundle(tmp_path, config: bytes, on_step=None) -> tuple[SimulatedDevice, object]:
    directory = provision_device(tmp_path / "device")
    bundle = tmp_path / "update.cwb"
    bundle.write_bytes(make_bundle("1.1.0", files={"firmware.bin": firmware_image("1.1.0"),
                                                   "config.toml": config}))  # fmt: skip
    device = SimulatedDevice(load_builtin("escooter-13s-urban"), directory, settings=SETTINGS,
                             clock_epoch_s=time.time(), on_step=on_step)  # fmt: skip
    return device, bundle


def run_to_idle(device: SimulatedDevice, limit_s: float = 3000.0) -> None:
    while device.agent.phase != "idle" and device.now_s < limit_s:
        device.run_until(device.now_s + 5.0)


def test_update_switches_at_a_safe_moment_and_the_new_configuration_runs(tmp_path):
    truth = {}
    device, bundle = device_with_bundle(
        tmp_path, GOOD_CONFIG, on_step=lambda step: truth.setdefault(step, plant_state())
    )
    plant = device.simulation.plant

    def plant_state():
        return device.now_s, float(np.abs(plant.string_current_a).max())

    # install while the scooter rides: the switch must wait for the pack to come to rest
    while abs(float(plant.string_current_a[0])) < 5.0:
        device.run_until(device.now_s + 1.0)
    installed_at_s = device.now_s
    device.agent.install_file(bundle, device.now_s)
    run_to_idle(device)

    switched_at_s, current_at_switch_a = truth["boot-env-written"]
    assert switched_at_s >= installed_at_s + SETTINGS.idle_hold_s
    assert current_at_switch_a <= SETTINGS.idle_current_a + 0.5  # the sensor's noise aside
    assert device.agent.state["last_result"] == {
        "ok": True, "detail": "running version 1.1.0 in slot b"}  # fmt: skip
    settings = device.bms.boot.controller.bms[0].config.settings
    assert settings.balancing.threshold_soc_pct == 1.5
    assert settings.power_path.precharge_timeout_s == 4.0
    assert device.slots.env().primary == "b" and device.agent.confirmed_version == "1.1.0"
    device.close()


def test_power_path_is_open_while_the_board_resets(tmp_path):
    device, bundle = device_with_bundle(tmp_path, GOOD_CONFIG)
    device.run_until(1.0)
    device.agent.install_file(bundle, device.now_s)
    while device.bms.resets == 0:
        device.run_until(device.now_s + 0.1)
    reset_s = device.now_s
    currents = []
    while device.now_s < reset_s + BOOT_S - 0.1:
        device.run_until(device.now_s + 0.1)
        currents.append(float(np.abs(device.simulation.plant.string_current_a).max()))
    assert max(currents) == 0.0
    device.close()


def test_slot_failing_its_health_check_rolls_back_by_itself(tmp_path):
    """An LFP cell model on an NMC pack: the new BMS trips on over-voltage at boot."""
    device, bundle = device_with_bundle(tmp_path, b'cell = "lfp-prismatic-100ah"\n')
    device.run_until(1.0)
    device.agent.install_file(bundle, device.now_s)
    run_to_idle(device)
    result = device.agent.state["last_result"]
    assert not result["ok"]
    assert result["detail"].startswith("rolled back: health check failed: protection tripped")
    assert device.bms.resets == 2  # into the trial slot, and back
    assert device.agent.booted.slot == "a" and device.agent.running_version == "1.0.0"
    assert device.slots.env().primary == "a" and device.slots.env().trial is None
    assert device.bms.boot_error() is None and not device.bms.trips()
    assert device.agent.confirmed_version == "1.0.0"
    device.close()


class FlakyServer:
    """An update server whose first download of the bundle arrives with one byte changed."""

    def __init__(self, bundle: bytes, corrupt_downloads: int) -> None:
        self.bundle = bundle
        self.corrupt_left = corrupt_downloads
        self.reports: list[tuple[str, str]] = []
        self.offered = False

    def next_offer(self, running_version):
        if self.offered:
            return None
        self.offered = True
        return Offer(1, 1, "1.1.0", len(self.bundle), hashlib.sha256(self.bundle).hexdigest(),
                     "/bundle")  # fmt: skip

    def fetch(self, url, start, length):
        chunk = bytearray(self.bundle[start : start + length])
        if start + length >= len(self.bundle) and self.corrupt_left:
            self.corrupt_left -= 1
            chunk[-1] ^= 0xFF
        return bytes(chunk)

    def report(self, deployment_id, state, progress_pct=None, detail="", version=None):
        self.reports.append((state, detail))


@pytest.mark.parametrize("corrupt_downloads, ok", [(1, True), (2, False)])
def test_a_corrupted_download_is_fetched_again_once(tmp_path, corrupt_downloads, ok):
    directory = provision_device(tmp_path / "device")
    server = FlakyServer(make_bundle("1.1.0"), corrupt_downloads)
    device = SimulatedDevice(load_builtin("escooter-13s-urban"), directory, settings=SETTINGS,
                             server=server, clock_epoch_s=time.time())  # fmt: skip
    device.run_until(5.0)
    run_to_idle(device)
    assert device.agent.state["last_result"]["ok"] is ok
    details = [detail for _, detail in server.reports]
    assert "download did not match its sha256: fetching again" in details
    if not ok:
        assert server.reports[-1] == ("failure", "download does not match the offered sha256 "
                                      "(twice)")  # fmt: skip
        assert device.agent.running_version == "1.0.0"
    device.close()
