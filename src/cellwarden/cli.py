"""The ``cellwarden`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cellwarden.model.errors import ConfigError

app = typer.Typer(
    name="cellwarden",
    help="cellwarden — an open battery-management platform, run against a simulated pack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
error_console = Console(stderr=True)

PROGRESS_THRESHOLD_S = 600.0


def _fail(error: Exception) -> typer.Exit:
    error_console.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
    return typer.Exit(code=2)


@app.command()
def scenarios(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list instead of a table.")
    ] = False,
) -> None:
    """List the built-in scenarios."""
    from cellwarden.simulation.catalogue import builtin_scenarios

    rows = [
        {
            "name": s.name,
            "architecture": s.system.architecture.value,
            "cells": s.system.cell_count,
            "strings": s.system.string_count,
            "sector": s.sector,
            "duration_s": s.duration_s,
            "description": s.description,
        }
        for s in builtin_scenarios()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="built-in scenarios")
    for column in ("name", "architecture", "cells", "sector", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(str(row[c]) for c in ("name", "architecture", "cells", "sector", "description"))
        )
    console.print(table)


@app.command()
def simulate(
    scenario: Annotated[
        str, typer.Argument(help="A built-in scenario name or a scenario TOML file.")
    ],
    duration: Annotated[
        float | None, typer.Option("--duration", help="Cut the run to this many simulated seconds.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: out/<scenario>).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Run a scenario and write its time series, events, summary and plot."""
    from cellwarden.simulation.catalogue import resolve_scenario
    from cellwarden.simulation.report import write_results
    from cellwarden.simulation.runner import Simulation

    try:
        spec = resolve_scenario(scenario)
        simulation = Simulation(spec, duration_s=duration)
    except ConfigError as error:
        raise _fail(error) from None
    show_progress = (
        not as_json and sys.stderr.isatty() and simulation.duration_s >= PROGRESS_THRESHOLD_S
    )
    result = simulation.run(progress=show_progress)
    folder = out or Path("out") / spec.name
    paths = write_results(result, folder)
    summary = result.summary
    if as_json:
        print(json.dumps({**summary, "outputs": {k: str(v) for k, v in paths.items()}}, indent=2))
        return
    console.print(
        f"[bold]{spec.name}[/]: {summary['simulated_s']:.0f} s simulated in "
        f"{summary['wall_s']:.1f} s, {summary['cells']} cells, "
        f"cell voltage {summary['cell_voltage_min_v']:.3f}–{summary['cell_voltage_max_v']:.3f} V, "
        f"temperature {summary['cell_temp_min_c']:.1f}–{summary['cell_temp_max_c']:.1f} °C, "
        f"{summary['energy_out_wh']:.0f} Wh out / {summary['energy_in_wh']:.0f} Wh in, "
        f"{summary['event_count']} events"
    )
    console.print(f"results in [bold]{folder}[/] ({', '.join(p.name for p in paths.values())})")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
