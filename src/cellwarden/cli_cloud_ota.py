"""``cellwarden cloud ota ...``: bundles, campaigns and device tokens in the cloud's store
(the same as the API's update routes; docs/ota-cloud.md)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cellwarden.cli_cloud import DEFAULT_DB, DbOption, _store
from cellwarden.cli_output import console, fail

if TYPE_CHECKING:
    from cellwarden.cloud.store.cloud_store import CloudStore

ota_cloud_app = typer.Typer(help="Over-the-air update bundles and campaigns.",
                            no_args_is_help=True)  # fmt: skip
campaign_app = typer.Typer(help="Staged rollouts of a bundle.", no_args_is_help=True)
ota_cloud_app.add_typer(campaign_app, name="campaign")
OPERATOR = "cli"


@contextlib.contextmanager
def _ota_store(db: str) -> Iterator[CloudStore]:
    """The store, closed after; the store's and registry's refusals end the command."""
    from cellwarden.cloud.store.ota_store import OtaError
    from cellwarden.cloud.store.registry import RegistryError

    store = _store(db)
    try:
        yield store
    except (OtaError, RegistryError, LookupError) as error:
        raise fail(error) from None
    finally:
        store.close()


def _org_of_campaign(store: CloudStore, campaign_id: int) -> int:
    rows = store.db.query("SELECT org_id FROM ota_campaigns WHERE id = ?", (campaign_id,))
    if not rows:
        raise LookupError(f"no campaign {campaign_id}")
    return rows[0][0]


@ota_cloud_app.command("upload")
def upload(
    bundle: Path, org: Annotated[str, typer.Option(help="The owning organisation.")],
    db: DbOption = DEFAULT_DB,
) -> None:  # fmt: skip
    """Check a bundle (as the API does) and store it; prints its id."""
    from cellwarden.ota.bundle import BundleError, inspect_bundle

    try:
        data = bundle.read_bytes()
        info = inspect_bundle(data)
    except (OSError, BundleError) as error:
        raise fail(f"{bundle}: {error}") from None
    with _ota_store(db) as store:
        stored = store.ota.add_bundle(store.registry.org_id(org), data, info, OPERATOR)
    console.print(f"bundle {stored['id']}: version {info.manifest.version} for "
                  f"{', '.join(info.manifest.hardware)} ({info.manifest.architecture}), "
                  f"{info.size} bytes", highlight=False)  # fmt: skip


@campaign_app.command("create")
def campaign_create(
    bundle: Annotated[int, typer.Option(help="The bundle's id.")],
    fleet: Annotated[str, typer.Option(help="Every pack of this fleet.")],
    name: Annotated[str | None, typer.Option(help="Default: the bundle's version.")] = None,
    canary_pct: float = 10.0,
    waves: Annotated[str, typer.Option(help="Further waves, percent of the fleet.")] = "30,60",
    failure_threshold_pct: float = 20.0,
    wave_timeout_s: float = 86400.0,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Roll a bundle out over a fleet: a canary, then waves."""
    from cellwarden.cloud.store.ota_store import CampaignSpec

    try:
        wave_pcts = tuple(float(part) for part in waves.split(",") if part.strip())
    except ValueError:
        raise fail(f"--waves {waves!r}: give percentages separated by commas") from None
    with _ota_store(db) as store:
        fleet_id, org_id = store.registry.fleet(fleet)
        devices = store.ota.fleet_devices(org_id, fleet_id)
        found = store.ota.bundle(org_id, bundle)
        if found is None:
            raise LookupError(f"no bundle {bundle} in the fleet's organisation")
        spec = CampaignSpec(bundle, name or found["version"], devices, canary_pct, wave_pcts,
                            failure_threshold_pct, wave_timeout_s)  # fmt: skip
        campaign_id = store.ota.create_campaign(org_id, spec, OPERATOR)
        _show(store.ota.campaign(org_id, campaign_id) or {}, as_json=False)


@campaign_app.command("show")
def campaign_show(campaign_id: int, db: DbOption = DEFAULT_DB, json_output: Annotated[
        bool, typer.Option("--json", help="The API's document.")] = False) -> None:  # fmt: skip
    """A campaign: state, reason, waves and each device's deployment."""
    with _ota_store(db) as store:
        _show(store.ota.campaign(_org_of_campaign(store, campaign_id), campaign_id) or {},
              json_output)  # fmt: skip


def _control(campaign_id: int, action: str, db: str) -> None:
    with _ota_store(db) as store:
        org_id = _org_of_campaign(store, campaign_id)
        _show(store.ota.control(org_id, campaign_id, action), as_json=False)


@campaign_app.command("pause")
def campaign_pause(campaign_id: int, db: DbOption = DEFAULT_DB) -> None:
    """Offer nothing more until resumed."""
    _control(campaign_id, "pause", db)


@campaign_app.command("resume")
def campaign_resume(campaign_id: int, db: DbOption = DEFAULT_DB) -> None:
    """Go on; the failures so far are accepted (they no longer count)."""
    _control(campaign_id, "resume", db)


@campaign_app.command("cancel")
def campaign_cancel(campaign_id: int, db: DbOption = DEFAULT_DB) -> None:
    """Stop for good (devices already updating finish and report)."""
    _control(campaign_id, "cancel", db)


@ota_cloud_app.command("device-token")
def device_token(device_id: str, db: DbOption = DEFAULT_DB) -> None:
    """A new token for a pack's update agent, printed once (the previous one stops working)."""
    with _ota_store(db) as store:
        token = store.ota.issue_device_token(device_id)
    console.print(f"update token of {device_id!r}:", highlight=False)
    print(token)


def _show(campaign: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(campaign, indent=1))
        return
    reason = f" — {campaign['reason']}" if campaign["reason"] else ""
    console.print(f"campaign {campaign['id']} {campaign['name']!r}: {campaign['state']}{reason}",
                  highlight=False)  # fmt: skip
    for wave in campaign["waves"]:
        states = ", ".join(f"{n} {s}" for s, n in sorted(wave["states"].items()))
        label = "canary" if wave["wave"] == 0 else f"wave {wave['wave']}"
        held = "released" if wave["released"] else "held"
        console.print(f"  {label}: {wave['devices']} devices, {held}: {states}", highlight=False)
    table = Table("device", "wave", "state", "detail", "bytes")
    for device in campaign.get("devices", []):
        table.add_row(device["device_id"], str(device["wave"]), device["state"],
                      device["detail"] or "", str(device["bytes_served"]))  # fmt: skip
    console.print(table)
