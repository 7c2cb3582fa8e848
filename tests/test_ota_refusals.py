"""Every bad bundle is refused by the device with its reason named, and nothing of the running
slot or the boot environment changes: tampered (by hand and at random bytes), wrong key,
attacker's root, revoked key, expired, downgraded, same version, too-old base, wrong board,
wrong architecture, truncated, padded, bad configuration, not a bundle."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from tests.ota_support import (
    DAY_S,
    GOOD_CONFIG,
    Signer,
    firmware_image,
    make_bundle,
    provision_device,
    tree_digest,
)
from tests.test_ota_bundle import reassemble

from cellwarden.edge.ota_agent import OtaAgent
from cellwarden.edge.ota_provision import device_identity
from cellwarden.edge.ota_slots import SlotStore
from cellwarden.ota.bundle import BundleError
from cellwarden.ota.keys import SigningKey
from cellwarden.ota.root import make_root

SIGNER = Signer()


class IdleProbe:
    """A BMS at rest with its path open (what installing needs of it: nothing)."""

    def boot_error(self):
        return None

    def main_cycles(self):
        return 0

    def main_period_s(self):
        return 1.0

    def protection_thresholds(self):
        return {}

    def can_frames_received(self):
        return {}

    def trips(self):
        return ()

    def path_closed(self):
        return False

    def current_a(self):
        return 0.0


def device_agent(directory) -> OtaAgent:
    _, identity = device_identity(directory)
    agent = OtaAgent(directory, identity, IdleProbe(), clock_epoch_s=time.time())
    agent.on_boot(SlotStore(directory).boot(), 0.0)
    return agent


@pytest.fixture
def device(tmp_path):
    return provision_device(tmp_path / "device", signer=SIGNER)


def protected_state(directory) -> dict[str, str]:
    """What no refused bundle may touch: the running slot, the boot environment, the trust."""
    state = {f"a/{k}": v for k, v in tree_digest(directory / "slots" / "a").items()}
    state |= {f"boot/{k}": v for k, v in tree_digest(directory / "boot").items()}
    return state | {f"trust/{k}": v for k, v in tree_digest(directory / "trust").items()}


def edit_header(bundle: bytes, change) -> bytes:
    def edit(header):
        change(header)
        return json.dumps(header).encode()

    return reassemble(bundle, edit)


def bad_bundles() -> list[tuple[str, bytes, str]]:
    """(case, bundle, words the refusal must contain)."""
    now = time.time()
    good = make_bundle("1.1.0", signer=SIGNER)
    flipped = bytearray(good)
    flipped[-500] ^= 0x01
    stranger = SigningKey.generate()
    attacker_root = make_root(1, now + 365 * DAY_S, [stranger.public], [stranger.public],
                              [stranger])  # fmt: skip
    attacker_v2 = make_root(2, now + 365 * DAY_S, [stranger.public], [stranger.public],
                            [stranger])  # fmt: skip
    return [
        ("payload byte flipped", bytes(flipped), "does not match its signed hash"),
        (
            "version edited",
            edit_header(good, lambda h: h["manifest"]["signed"].update(version="1.2.0")),
            "0 valid targets signature",
        ),
        (
            "hardware edited",
            edit_header(good, lambda h: h["manifest"]["signed"].update(hardware=["cw-other"])),
            "0 valid targets signature",
        ),
        (
            "roots edited",
            edit_header(
                good, lambda h: h["roots"][0]["signed"].update(expires="2099-01-01T00:00:00Z")
            ),
            "root metadata the bundle carries",
        ),
        (
            "signature dropped",
            edit_header(good, lambda h: h["manifest"].update(signatures=[])),
            "0 valid targets signature",
        ),
        ("unknown key", make_bundle(signer=SIGNER, keys=[stranger]), "does not trust for targets"),
        (
            "attacker's own root v1",
            make_bundle(signer=SIGNER, keys=[stranger], roots=[attacker_root]),
            "does not trust",
        ),
        (
            "attacker's root v2",
            make_bundle(signer=SIGNER, keys=[stranger], roots=[attacker_root, attacker_v2]),
            "0 valid root signature",
        ),
        ("expired", make_bundle(signer=SIGNER, expires_s=now - 60), "bundle expired at"),
        ("downgrade", make_bundle("0.9.0", signer=SIGNER), "downgrade refused"),
        ("same version", make_bundle("1.0.0", signer=SIGNER), "downgrade refused"),
        (
            "base too old",
            make_bundle(signer=SIGNER, min_version="1.0.5"),
            "needs at least version 1.0.5",
        ),
        (
            "wrong board",
            make_bundle(signer=SIGNER, hardware=["cw-bms2000"]),
            "wrong target: bundle is for cw-bms2000",
        ),
        (
            "wrong architecture",
            make_bundle(signer=SIGNER, architecture="master-slave"),
            "wrong target: bundle is for a master-slave BMS",
        ),
        ("truncated in magic", good[:5], "end inside its magic"),
        ("truncated in header", good[:300], "truncated"),
        ("truncated in payload", good[: len(good) // 2], "bundle truncated"),
        ("last byte missing", good[:-1], "bundle truncated"),
        ("bytes appended", good + b"\0" * 7, "7 bytes after the payload"),
        ("not a bundle", firmware_image("x"), "bad magic"),
        (
            "bad configuration",
            make_bundle(
                signer=SIGNER,
                files={
                    "firmware.bin": firmware_image("1.1.0"),
                    "config.toml": b"[bms.balancing]\nthreshold_soc_pct = 99\n",
                },
            ),
            "configuration refused",
        ),
        (
            "unknown config key",
            make_bundle(signer=SIGNER, files={"config.toml": b"limits = 3\n"}),
            "unknown key(s) limits",
        ),
    ]


CASES = bad_bundles()


@pytest.mark.parametrize("case, bundle, reason", CASES, ids=[c[0] for c in CASES])
def test_bad_bundle_refused_with_reason_and_running_slot_untouched(device, case, bundle, reason):
    agent = device_agent(device)
    before = protected_state(device)
    path = device / "incoming.cwb"
    path.write_bytes(bundle)
    with pytest.raises(BundleError) as refusal:
        agent.install_file(path, 1.0)
    assert reason in str(refusal.value)
    assert agent.state["last_result"] == {"ok": False, "detail": f"refused: {refusal.value}"}
    assert agent.phase == "idle"
    assert protected_state(device) == before
    assert SlotStore(device).boot().slot == "a"


def test_every_single_byte_change_is_refused(device):
    """300 bundles, each with one byte changed at a random place (header or payload)."""
    agent = device_agent(device)
    before = protected_state(device)
    good = make_bundle("1.1.0", signer=SIGNER)
    rng = np.random.default_rng(15)
    path = device / "incoming.cwb"
    refused = 0
    for position in rng.choice(len(good), size=300, replace=False):
        tampered = bytearray(good)
        tampered[position] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(tampered))
        with pytest.raises(BundleError):
            agent.install_file(path, 1.0)
        refused += 1
    assert refused == 300
    assert protected_state(device) == before
    path.write_bytes(good)
    agent.install_file(path, 1.0)  # the agent is not wedged by what it refused
    assert agent.phase == "installed" and SlotStore(device).version("b") == "1.1.0"


def test_revocation_sticks_once_the_device_has_seen_the_new_root(device):
    """A bundle carrying root v2 (without the old targets key) teaches the device; a later
    bundle signed by the revoked key and carrying only v1 is refused."""
    agent = device_agent(device)
    successor = SigningKey.generate()
    v2 = make_root(2, time.time() + 365 * DAY_S, [SIGNER.root_key.public], [successor.public],
                   [SIGNER.root_key])  # fmt: skip
    path = device / "incoming.cwb"
    path.write_bytes(make_bundle("1.1.0", signer=SIGNER, keys=[successor],
                                 roots=[SIGNER.roots[0], v2]))  # fmt: skip
    agent.install_file(path, 1.0)
    assert agent.trusted_root().version == 2
    old_key_bundle = make_bundle("1.2.0", signer=SIGNER, files={"config.toml": GOOD_CONFIG})
    path.write_bytes(old_key_bundle)
    agent._set(phase="idle")
    with pytest.raises(BundleError, match="does not trust for targets"):
        agent.install_file(path, 1.0)
