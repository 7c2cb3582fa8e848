"""``cellwarden passport ...``: show, export and validate battery passports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cellwarden.cli_output import console, fail

passport_app = typer.Typer(
    help="EU battery passports (data model 1.2): show, export, validate.", no_args_is_help=True
)

FORMATS = ("json", "jsonld", "html")
BatteryArgument = Annotated[
    str, typer.Argument(help="A built-in scenario's name or a scenario TOML file.")
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
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def _render(battery: str, role: str, output: str, manufacturer: Path | None, base_url: str) -> str:
    from cellwarden.model.errors import ConfigError
    from cellwarden.passport.access_levels import parse_role
    from cellwarden.passport.batterypass_files import PassportDataError
    from cellwarden.passport.builder import Identity, build_passport
    from cellwarden.passport.identifier import passport_url, passport_urn, qr_code_svg
    from cellwarden.passport.manufacturer_file import load_manufacturer_file
    from cellwarden.passport.passport_export import to_html, to_json_ld
    from cellwarden.passport.passport_fields import project
    from cellwarden.passport.rated_values import rated_values
    from cellwarden.simulation.catalogue import resolve_scenario

    if output not in FORMATS:
        raise fail(f"--format {output!r}: use {', '.join(FORMATS)}")
    try:
        chosen = parse_role(role)
        maker = load_manufacturer_file(manufacturer)
        scenario = resolve_scenario(battery)
        serial = scenario.system.serial_number
        urn = passport_urn(serial, maker.namespace)
        document = build_passport(
            Identity(urn, serial, scenario.sector), maker, rated_values(scenario.system)
        )
        view = project(document, chosen)
    except (ConfigError, ValueError, PassportDataError) as error:
        raise fail(error) from None
    if output == "html":
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
) -> None:
    """Print a battery's passport as ROLE sees it."""
    typer.echo(_render(battery, role, output, manufacturer, base_url))


@passport_app.command("export")
def export(
    battery: BatteryArgument,
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    role: RoleOption = "manufacturer",
    output: FormatOption = "json",
    manufacturer: ManufacturerOption = None,
    base_url: BaseUrlOption = DEFAULT_BASE_URL,
) -> None:
    """Write a battery's passport to a file (the manufacturer's full record by default)."""
    text = _render(battery, role, output, manufacturer, base_url)
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
