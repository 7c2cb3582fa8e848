"""A power cut at any step of an update leaves a bootable slot, and the device finishes the
update (or rolls it back) by itself after the restart.

Each case runs the device in its own process and kills it with SIGKILL right after the step
(nothing is flushed or closed), checks what the bootloader would find, then starts the device
again and runs it to the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.ota_support import GOOD_CONFIG, firmware_image, make_bundle, provision_device

from cellwarden.edge.ota_slots import SlotStore

ROOT = Path(__file__).resolve().parents[1]
GOOD_STEPS = [
    *("verified", "slot-invalidated", "file-chunk", "file-written", "file-chunk"),
    *("file-written", "slot-sealed", "boot-env-written", "trial-booted", "committed"),
]
LFP_ON_NMC = b'cell = "lfp-prismatic-100ah"\n'  # a configuration that trips the pack at boot


def run_device(directory: Path, bundle: Path, step: str = "none", count: int = 0):
    return subprocess.run(
        [sys.executable, "-m", "tests.ota_power_cut_driver", str(directory), str(bundle), step,
         str(count)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def kill_points(steps: list[str]) -> list[tuple[str, int]]:
    return [(name, steps[: index + 1].count(name)) for index, name in enumerate(steps)]


def prepared(tmp_path: Path, config: bytes) -> tuple[Path, Path]:
    directory = provision_device(tmp_path / "device")
    files = {"firmware.bin": firmware_image("1.1.0"), "config.toml": config}
    bundle = tmp_path / "update.cwb"
    bundle.write_bytes(make_bundle("1.1.0", files=files))
    return directory, bundle


def test_uninterrupted_update_takes_the_expected_steps(tmp_path):
    directory, bundle = prepared(tmp_path, GOOD_CONFIG)
    result = run_device(directory, bundle)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["steps"] == GOOD_STEPS
    assert (outcome["version"], outcome["last_result"]["ok"]) == ("1.1.0", True)


CASES = [("good", *point) for point in kill_points(GOOD_STEPS)] + [
    ("trips", "trial-booted", 1),
    ("trips", "rolled-back", 1),
]


@pytest.mark.parametrize("bundle_kind, step, count", CASES,
                         ids=[f"{kind}-{step}-{count}" for kind, step, count in CASES])  # fmt: skip
def test_power_cut_at_each_step_leaves_a_bootable_slot(tmp_path, bundle_kind, step, count):
    directory, bundle = prepared(tmp_path, LFP_ON_NMC if bundle_kind == "trips" else GOOD_CONFIG)
    killed = run_device(directory, bundle, step, count)
    assert killed.returncode == -9, f"not killed at {step} #{count}: {killed.stderr[-500:]}"

    slots = SlotStore(directory)
    env = slots.env()
    assert slots.bootable(env.primary) is None, "the primary slot must always boot"
    if env.trial is not None:
        assert slots.bootable(env.trial) is None, "a trial slot must be complete"
    assert slots.version(env.primary) == ("1.1.0" if step == "committed" else "1.0.0")

    restarted = run_device(directory, bundle)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    outcome = json.loads(restarted.stdout)
    assert outcome["phase"] == "idle" and outcome["boot_error"] is None
    assert slots.bootable(outcome["slot"]) is None
    detail = outcome["last_result"]["detail"]
    if bundle_kind == "trips":
        assert outcome["version"] == "1.0.0" and not outcome["last_result"]["ok"]
        expected = "did not confirm" if step == "trial-booted" else "protection tripped"
        assert expected in detail
    elif step == "trial-booted":  # the cut came during the trial: the watchdog's case
        assert outcome["version"] == "1.0.0"
        assert "rolled back by the bootloader: slot b did not confirm its trial boot" in detail
    else:
        assert outcome["version"] == "1.1.0" and outcome["last_result"]["ok"], detail
