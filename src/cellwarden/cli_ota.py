"""``cellwarden ota ...``: signing keys, root metadata, bundles, and a simulated device with
A/B slots that installs them (docs/ota.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cellwarden.cli_output import console, fail

ota_app = typer.Typer(
    help="Signed over-the-air updates: keys, root metadata, bundles, a simulated device.",
    no_args_is_help=True,
)
root_app = typer.Typer(help="Root metadata: who may sign bundles and the next root.",
                       no_args_is_help=True)  # fmt: skip
device_app = typer.Typer(help="A simulated device with A/B slots.", no_args_is_help=True)
ota_app.add_typer(root_app, name="root")
ota_app.add_typer(device_app, name="device")
DAY_S = 86400.0

KeyList = Annotated[list[Path], typer.Option(help="A public (or private) key file; repeat.")]
SignerList = Annotated[list[Path], typer.Option("--sign-with", help="A private key; repeat.")]
RootList = Annotated[
    list[Path], typer.Option("--root", help="Root metadata file, oldest first; repeat.")
]
DirOption = Annotated[Path, typer.Option("--dir", help="The device's directory.")]


@ota_app.command("keygen")
def keygen(out: Annotated[Path, typer.Option(help="Private key file to write.")]) -> None:
    """Write a new Ed25519 key: OUT (private, mode 0600) and OUT.pub."""
    from cellwarden.ota.keys import SigningKey

    key = SigningKey.generate()
    try:
        public = key.save(out)
    except OSError as error:
        raise fail(
            f"cannot write {out}: {error.strerror} (an existing key is never replaced)"
        ) from None
    console.print(f"key {key.keyid[:16]}…: private {out}, public {public}")


@root_app.command("init")
def root_init(
    root_key: KeyList,
    targets_key: KeyList,
    sign_with: SignerList,
    out: Annotated[Path, typer.Option(help="Root metadata file to write.")],
    root_threshold: int = 1,
    targets_threshold: int = 1,
    expires_days: float = 365.0,
) -> None:
    """Root metadata version 1."""
    _write_root(1, root_key, targets_key, sign_with, out, root_threshold, targets_threshold,
                expires_days, previous=None)  # fmt: skip


@root_app.command("rotate")
def root_rotate(
    previous: Annotated[Path, typer.Option(help="The current root metadata.")],
    root_key: KeyList,
    targets_key: KeyList,
    sign_with: SignerList,
    out: Annotated[Path, typer.Option(help="Root metadata file to write.")],
    root_threshold: int = 1,
    targets_threshold: int = 1,
    expires_days: float = 365.0,
) -> None:
    """The next root version: new keys, or fewer (a key left out is revoked). Sign with the
    current root keys and the new ones."""
    _write_root(None, root_key, targets_key, sign_with, out, root_threshold,
                targets_threshold, expires_days, previous)  # fmt: skip


def _write_root(version, root_keys, targets_keys, signers, out, root_threshold,
                targets_threshold, expires_days, previous) -> None:  # fmt: skip
    from cellwarden.ota.keys import KeyFileError, load_public_key, load_signing_key
    from cellwarden.ota.root import make_root, parse_root, update_root
    from cellwarden.ota.signed import MetadataError

    try:
        old = parse_root(_read_json(previous)) if previous is not None else None
        version = old.version + 1 if old is not None else version
        envelope = make_root(
            version, time.time() + expires_days * DAY_S,
            [load_public_key(p) for p in root_keys], [load_public_key(p) for p in targets_keys],
            [load_signing_key(p) for p in signers], root_threshold, targets_threshold,
        )  # fmt: skip
        if old is not None:
            update_root(old, [envelope], time.time())
        else:
            root = parse_root(envelope)
            root.signed_by(envelope, "root")
    except (KeyFileError, MetadataError, ValueError) as error:
        raise fail(error) from None
    out.write_text(json.dumps(envelope, indent=1))
    console.print(f"root v{version} written to {out}")


@ota_app.command("build")
def build(
    version: Annotated[str, typer.Option(help="The bundle's version, e.g. 1.2.0.")],
    payload: Annotated[Path, typer.Option(help="Folder with firmware.bin and/or config.toml.")],
    key: Annotated[list[Path], typer.Option(help="A targets signing key; repeat.")],
    root: RootList,
    hardware: Annotated[list[str], typer.Option(help="A board the bundle is for; repeat.")],
    architecture: Annotated[str, typer.Option(help="standalone, master-slave, multi-master.")],
    out: Annotated[Path, typer.Option(help="Bundle file to write.")],
    min_version: Annotated[str | None, typer.Option(help="Oldest version it installs on.")] = None,
    expires_days: float = 90.0,
) -> None:
    """Build and sign a bundle."""
    from cellwarden.ota.bundle import BundleError, build_bundle, inspect_bundle
    from cellwarden.ota.keys import KeyFileError, load_signing_key
    from cellwarden.ota.manifest import PAYLOAD_KINDS

    if not payload.is_dir():
        raise fail(f"payload folder {payload} does not exist") from None
    names = sorted(p.name for p in payload.iterdir())
    unknown = [name for name in names if name not in PAYLOAD_KINDS]
    if unknown:
        raise fail(
            f"{payload}: a payload holds {', '.join(PAYLOAD_KINDS)}; not {', '.join(unknown)}"
        ) from None
    try:
        data = build_bundle(
            {name: (payload / name).read_bytes() for name in names},
            version=version, hardware=hardware, architecture=architecture,
            expires_s=time.time() + expires_days * DAY_S,
            keys=[load_signing_key(p) for p in key],
            roots=[_read_json(p) for p in root], min_version=min_version,
        )  # fmt: skip
        info = inspect_bundle(data)
    except (BundleError, KeyFileError, ValueError) as error:
        raise fail(error) from None
    out.write_bytes(data)
    console.print(f"bundle {info.manifest.version} ({info.size} bytes, sha256 {info.sha256[:16]}…) "
                  f"written to {out}")  # fmt: skip


@ota_app.command("inspect")
def inspect(bundle: Path) -> None:
    """Check a bundle on its own terms and print its manifest."""
    from cellwarden.ota.bundle import BundleError, inspect_bundle

    try:
        info = inspect_bundle(bundle.read_bytes())
    except (BundleError, OSError) as error:
        raise fail(f"{bundle}: {error}") from None
    console.print_json(json.dumps(info.manifest.signed))


@device_app.command("init")
def device_init(
    directory: DirOption,
    device_id: Annotated[str, typer.Option(help="The device's id (as in telemetry).")],
    hardware: Annotated[str, typer.Option(help="The board's name.")],
    architecture: Annotated[str, typer.Option(help="standalone, master-slave, multi-master.")],
    root: Annotated[Path, typer.Option(help="The root metadata the device trusts.")],
    payload: Annotated[Path, typer.Option(help="Folder with the factory firmware/config.")],
    version: str = "1.0.0",
) -> None:
    """Provision a device directory: trust, slot A with the factory payload."""
    from cellwarden.edge.ota_provision import ProvisionError, provision
    from cellwarden.edge.ota_verify import DeviceIdentity

    try:
        files = {p.name: p.read_bytes() for p in sorted(payload.iterdir())}
        provision(directory, device_id, DeviceIdentity(hardware, architecture),
                  _read_json(root), version, files, time.time())  # fmt: skip
    except (ProvisionError, OSError) as error:
        raise fail(error) from None
    console.print(f"device {device_id} provisioned in {directory} (slot a, version {version})")


@device_app.command("status")
def device_status(directory: DirOption) -> None:
    """Slots, boot environment and the agent's state."""
    from cellwarden.edge.flash_files import read_json
    from cellwarden.edge.ota_agent import STATE_PATH
    from cellwarden.edge.ota_slots import SLOTS, SlotStore

    slots = SlotStore(directory)
    env = slots.env()
    table = Table("slot", "version", "bootable", "role")
    for slot in SLOTS:
        role = "primary" if slot == env.primary else ("trial" if slot == env.trial else "")
        table.add_row(slot, slots.version(slot) or "-", slots.bootable(slot) or "yes", role)
    console.print(table)
    state = read_json(directory / STATE_PATH) or {"phase": "idle"}
    console.print(f"agent: {state['phase']}; last result: {state.get('last_result')}")


@device_app.command("run")
def device_run(
    directory: DirOption,
    scenario: Annotated[str, typer.Option(help="The pack the board sits on (built-in or file).")],
    duration_s: Annotated[float, typer.Option(help="Simulated seconds to run.")] = 3600.0,
    bundle: Annotated[Path | None, typer.Option(help="Install this bundle first.")] = None,
    server: Annotated[str | None, typer.Option(help="The cloud's URL (device API).")] = None,
    token: Annotated[str | None, typer.Option(help="The device's token.")] = None,
    poll_s: float = 60.0,
    idle_hold_s: float = 60.0,
    health_window_s: float = 30.0,
) -> None:
    """Run the board over the scenario's pack with its update agent."""
    from cellwarden.edge.ota_agent import AgentSettings
    from cellwarden.edge.ota_client import UpdateServer
    from cellwarden.edge.ota_provision import ProvisionError
    from cellwarden.model.errors import ConfigError
    from cellwarden.ota.bundle import BundleError
    from cellwarden.simulation.catalogue import resolve_scenario
    from cellwarden.simulation.ota_device import SimulatedDevice

    if (server is None) != (token is None):
        raise fail("--server and --token go together") from None
    settings = AgentSettings(poll_period_s=poll_s, idle_hold_s=idle_hold_s,
                             health_window_s=health_window_s)  # fmt: skip
    client = UpdateServer(server, token) if server and token else None
    try:
        device = SimulatedDevice(resolve_scenario(scenario), directory, server=client,
                                 settings=settings, clock_epoch_s=time.time(),
                                 duration_s=duration_s)  # fmt: skip
        device.run_until(0.0)
        if bundle is not None:
            device.agent.install_file(bundle, device.now_s)
            console.print(f"installed {bundle} into slot {device.agent.state['slot']}")
        device.run_until(duration_s)
        device.close()
    except (ConfigError, ProvisionError, BundleError) as error:
        raise fail(error) from None
    finally:
        if client is not None:
            client.close()
    agent = device.agent
    console.print(f"{duration_s:g} s simulated: running slot {agent.booted.slot} "
                  f"version {agent.running_version}, {device.bms.resets} reset(s), agent "
                  f"{agent.phase}; last result: {agent.state.get('last_result')}")  # fmt: skip


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise fail(f"cannot read {path}: {error}") from None
