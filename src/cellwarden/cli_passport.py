"""``cellwarden passport ...``: battery passports — built from a scenario, or kept by the cloud
for its packs (register, status, refresh, grants, second-life list) — shown, exported and
validated."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cellwarden.cli_cloud import DEFAULT_DB, DbOption, _store
from cellwarden.cli_output import console, fail

passport_app = typer.Typer(
    help="EU battery passports (data model 1.2): show, export, validate, and the cloud's "
    "passports of its packs.",
    no_args_is_help=True,
)

FORMATS = ("json", "jsonld", "html")
BatteryArgument = Annotated[
    str,
    typer.Argument(
        help="A passport identifier (urn:...) or a pack's device id in the cloud's database, "
        "or a built-in scenario's name or scenario TOML file (a new battery's passport)."
    ),
]
RoleOption = Annotated[
    str,
    typer.Option(
        "--role", help="public, legitimate-interest, authority or manufacturer (sees all)."
    ),
]
FormatOption = Annotated[str, typer.Option("--format", help="json, jsonld or html.")]
ManufacturerOption = Annotated[
    Path | None,
    typer.Option("--manufacturer", help="Manufacturer file (TOML); default: the built-in example."),
]
BaseUrlOption = Annotated[
    str, typer.Option("--base-url", help="Address the passport pages are served under.")
]
AuthorOption = Annotated[str, typer.Option("--author", help="Who makes the change (the log).")]
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


@contextlib.contextmanager
def _passports(db: str) -> Iterator:
    """The cloud store; its errors (unknown passport, refused change) end the command."""
    from cellwarden.cloud.store.passport_store import UnknownPassportError
    from cellwarden.model.errors import ConfigError
    from cellwarden.passport.batterypass_files import PassportDataError

    store = _store(db)
    try:
        yield store
    except (UnknownPassportError, ValueError, ConfigError, PassportDataError) as error:
        raise fail(error) from None
    finally:
        store.close()


def _stored_document(battery: str, db: str) -> dict | None:
    """The current document of a stored passport, by identifier or device id; None when the
    database has neither (or there is no database)."""
    from cellwarden.passport.identifier import URN_PATTERN

    if db.startswith("sqlite:///") and not Path(db.removeprefix("sqlite:///")).is_file():
        return None
    with _passports(db) as store:
        urn = battery
        if not URN_PATTERN.match(battery):
            rows = store.db.query(
                "SELECT p.urn FROM passports p JOIN packs k ON k.id = p.pack_id "
                "WHERE k.device_id = ? ORDER BY p.created_s DESC",
                (battery,),
            )
            if not rows:
                return None
            urn = rows[0][0]
        return store.passports.current(urn).body


def _new_document(battery: str, manufacturer: Path | None) -> tuple[dict, str]:
    from cellwarden.passport.builder import Identity, build_passport
    from cellwarden.passport.identifier import passport_urn
    from cellwarden.passport.manufacturer_file import load_manufacturer_file
    from cellwarden.passport.rated_values import rated_values
    from cellwarden.simulation.catalogue import resolve_scenario

    maker = load_manufacturer_file(manufacturer)
    scenario = resolve_scenario(battery)
    serial = scenario.system.serial_number
    urn = passport_urn(serial, maker.namespace)
    return build_passport(Identity(urn, serial, scenario.sector), maker,
                          rated_values(scenario.system)), urn  # fmt: skip


def _render(battery: str, role: str, output: str, manufacturer: Path | None, base_url: str,
            db: str) -> str:  # fmt: skip
    from cellwarden.model.errors import ConfigError
    from cellwarden.passport.access_levels import parse_role
    from cellwarden.passport.batterypass_files import PassportDataError
    from cellwarden.passport.identifier import passport_url, qr_code_svg
    from cellwarden.passport.passport_export import to_html, to_json_ld
    from cellwarden.passport.passport_fields import project

    if output not in FORMATS:
        raise fail(f"--format {output!r}: use {', '.join(FORMATS)}")
    try:
        chosen = parse_role(role)
        document = _stored_document(battery, db)
        if document is None:
            document, _ = _new_document(battery, manufacturer)
        view = project(document, chosen)
    except (ConfigError, ValueError, PassportDataError) as error:
        raise fail(error) from None
    if output == "html":
        urn = document["generalProductInformation"]["batteryPassportIdentifier"]
        url = passport_url(base_url, urn)
        return to_html(view, chosen, qr_code_svg(url), url)
    return json.dumps(to_json_ld(view) if output == "jsonld" else view, indent=1)


@passport_app.command("show")
def show(
    battery: BatteryArgument,
    role: RoleOption = "public",
    output: FormatOption = "json",
    manufacturer: ManufacturerOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print a battery's passport as ROLE sees it."""
    typer.echo(_render(battery, role, output, manufacturer, base_url, db))


@passport_app.command("export")
def export(
    battery: BatteryArgument,
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    role: RoleOption = "manufacturer",
    output: FormatOption = "json",
    manufacturer: ManufacturerOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a battery's passport to a file (the manufacturer's full record by default)."""
    text = _render(battery, role, output, manufacturer, base_url, db)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    console.print(f"passport of {battery} ({role}, {output}) -> {out}", highlight=False)


@passport_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="A passport as JSON or JSON-LD.")],
) -> None:
    """Check a passport against the published schemas and the consistency rules; every
    failure is named (exit code 1 when there is one)."""
    from cellwarden.passport.batterypass_files import PassportDataError, decode
    from cellwarden.passport.passport_export import from_json_ld
    from cellwarden.passport.validation import validate_document

    try:
        document = json.loads(decode(path.read_bytes()))
    except OSError as error:
        raise fail(f"{path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise fail(f"{path}: not JSON: {error}") from None
    try:
        problems = validate_document(from_json_ld(document))
    except PassportDataError as error:
        raise fail(error) from None
    for problem in problems:
        console.print(f"[red]✗[/] {problem}", highlight=False)
    if problems:
        console.print(f"{path}: {len(problems)} problem(s)")
        raise typer.Exit(code=1)
    console.print(f"{path}: valid (7 sections against data model 1.2, consistency rules)")


@passport_app.command("register")
def register(
    device_id: Annotated[str, typer.Argument(help="A pack registered in the cloud.")],
    scenario: Annotated[
        str, typer.Option(help="The pack's system configuration: a scenario name or TOML file.")
    ],
    manufacturer: ManufacturerOption = None,
    author: AuthorOption = "cli",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create the passport of a registered pack's battery (its serial number is the device
    id) and bring its dynamic data up to date from the stored history."""
    from cellwarden.cloud.passport_lifecycle import register_passport
    from cellwarden.passport.manufacturer_file import load_manufacturer_file
    from cellwarden.simulation.catalogue import resolve_scenario

    with _passports(db) as store:
        chosen = resolve_scenario(scenario)
        record = register_passport(store, device_id, chosen.system, chosen.sector,
                                   load_manufacturer_file(manufacturer), author)  # fmt: skip
    console.print(f"passport {record.urn} of pack {device_id!r} (version {record.version})",
                  highlight=False)  # fmt: skip


@passport_app.command("status")
def status(
    urn: Annotated[str, typer.Argument(help="The passport identifier.")],
    new_status: Annotated[str, typer.Argument(help="Repurposed, Reused, Remanufactured or Waste.")],
    note: Annotated[str, typer.Option(help="Why (kept in the status history).")] = "",
    author: AuthorOption = "cli",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Change a battery's status; a second life starts its successor passport."""
    from cellwarden.cloud.passport_lifecycle import change_status

    with _passports(db) as store:
        done = change_status(store, urn, new_status, author, note)
    successor = f", successor {done['successor']}" if "successor" in done else ""
    console.print(f"{urn}: {done['status']}{successor}", highlight=False)


@passport_app.command("refresh")
def refresh(
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")],
    last: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC), included.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Derive the passports' daily counters for past days from the stored summaries and
    save a version of each passport whose dynamic data changed (the nightly run does
    yesterday)."""
    from cellwarden.cloud.analytics.passport_refresh import refresh_passports
    from cellwarden.cloud.passport_lifecycle import update_document

    try:
        first_day, last_day = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise fail(f"--from {first!r} and --to {last!r} must be dates (YYYY-MM-DD)") from None
    if not 0 <= (last_day - first_day).days <= 3660:
        raise fail(f"--from {first} .. --to {last}: at most ten years, in order")
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    with _passports(db) as store:
        run = refresh_passports(store, days, lambda urn, c: update_document(store, urn, c))
    console.print(f"{run.counter_days} pack-days of counters, {len(run.versions_saved)} "
                  f"passports updated", highlight=False)  # fmt: skip
    for urn, why in run.failures.items():
        console.print(f"[red]failed {urn}:[/] {why}", highlight=False)


@passport_app.command("grant")
def grant(
    user: Annotated[str, typer.Argument(help="A cloud user (cloud users add).")],
    role: Annotated[str, typer.Option(help="legitimate-interest or authority.")],
    author: AuthorOption = "cli",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Let a user outside the owning organisations read passports as ROLE."""
    with _passports(db) as store:
        rows = store.db.query("SELECT id FROM users WHERE name = ?", (user,))
        if not rows:
            raise fail(f"no user {user!r}")
        store.passports.grant_role(rows[0][0], role, author)
    console.print(f"{user!r} reads passports as {role}", highlight=False)


@passport_app.command("second-life")
def second_life(
    fleet: Annotated[str, typer.Option(help="The fleet whose packs to grade.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """The fleet's packs graded for a second life (A, B, C, reject), best first."""
    from cellwarden.cloud.passport_lifecycle import second_life_candidates

    with _passports(db) as store:
        listed = second_life_candidates(store, store.registry.fleet(fleet)[0])
    if as_json:
        typer.echo(json.dumps(listed, indent=1))
        return
    for row in listed:
        console.print(f"{row['pack_id']}: {row['grade']} ({row['score']:.0f}) "
                      f"{row['second_use']} - {row['reasons']}", highlight=False)  # fmt: skip
