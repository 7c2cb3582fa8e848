"""The ``cellwarden`` command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cellwarden.cli_cloud import cloud_app
from cellwarden.cli_cloud_ota import ota_cloud_app
from cellwarden.cli_fleet import fleet_app
from cellwarden.cli_ota import ota_app
from cellwarden.cli_output import console, error_console
from cellwarden.cli_output import fail as _fail
from cellwarden.cli_passport import passport_app
from cellwarden.model.errors import ConfigError

app = typer.Typer(
    name="cellwarden",
    help="cellwarden — an open battery-management platform, run against a simulated pack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PROGRESS_THRESHOLD_S = 600.0
CONSOLE_POLL_S = 0.1  # simulated seconds between serial console polls


def _scenario(name_or_path: str):
    """A built-in scenario or a scenario file; a bad one ends the command with exit code 2."""
    from cellwarden.simulation.catalogue import resolve_scenario

    try:
        return resolve_scenario(name_or_path)
    except ConfigError as error:
        raise _fail(error) from None


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
    can_log: Annotated[
        Path | None,
        typer.Option(
            "--can-log",
            help="Write every frame of every CAN bus to this file in the candump log format "
            "(timestamps in simulated seconds).",
        ),
    ] = None,
    console_port: Annotated[
        str | None,
        typer.Option(
            "--console",
            help="Serve the first string's serial console on this port while the run goes on: "
            "a pyserial URL or device path, or 'pty' for a new pseudo-terminal (its path is "
            "printed; open it with screen or picocom). Paces the run at --speed.",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed",
            min=0.001,
            help="Pace the simulated clock at K times real time "
            "(default: as fast as possible; 1 with --console).",
        ),
    ] = None,
) -> None:
    """Run a scenario and write its time series, events, summary and plot."""
    from cellwarden.simulation.report import write_results
    from cellwarden.simulation.runner import Simulation

    spec = _scenario(scenario)
    try:
        simulation = Simulation(spec, duration_s=duration, can_log=can_log)
    except ConfigError as error:
        raise _fail(error) from None
    if console_port is not None:
        speed = speed or 1.0
        _attach_console(simulation, console_port)
    show_progress = (
        not as_json and sys.stderr.isatty() and simulation.duration_s >= PROGRESS_THRESHOLD_S
    )
    result = simulation.run(progress=show_progress, speed=speed)
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


def _attach_console(simulation, spec: str) -> None:
    """Poll a serial console on the first string's BMS every 100 ms of simulated time."""
    from cellwarden.comms.console import SerialConsole
    from cellwarden.comms.console_port import open_console_port
    from cellwarden.simulation.controller import PeriodicTask

    bms_list = getattr(simulation.controller, "bms", None)
    if not bms_list:
        raise _fail("--console needs the BMS in the loop (controller = 'bms')")
    try:
        port, name = open_console_port(spec)
    except ValueError as error:
        raise _fail(error) from None
    console = SerialConsole(port, bms_list[0])
    simulation.add_task(PeriodicTask("console", CONSOLE_POLL_S, console.poll))
    error_console.print(f"serial console on [bold]{name}[/] (type 'help')")


edge_app = typer.Typer(
    help="The device's edge: telemetry over MQTT with store-and-forward, GPS, the data logger.",
    no_args_is_help=True,
)
app.add_typer(edge_app, name="edge")
cloud_app.add_typer(ota_cloud_app, name="ota")
app.add_typer(cloud_app, name="cloud")
app.add_typer(fleet_app, name="fleet")
app.add_typer(passport_app, name="passport")
app.add_typer(ota_app, name="ota")


@edge_app.command("run")
def edge_run(
    scenario: Annotated[
        str, typer.Argument(help="A built-in scenario name or a scenario TOML file.")
    ],
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="mqtt://[user:password@]host:port or mqtts://... (none: queue and log only).",
        ),
    ] = None,
    device_id: Annotated[
        str, typer.Option("--device-id", help="This device's id (the MQTT user and topic level).")
    ] = "device-1",
    fleet: Annotated[
        str, typer.Option("--fleet", help="The fleet's id in the topics.")
    ] = "default",
    ca_file: Annotated[
        Path | None, typer.Option("--ca", help="CA certificate to verify an mqtts:// broker.")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option("--speed", min=0.001, help="Pace the simulated clock at K times real time."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Cut the run to this many simulated seconds.")
    ] = None,
    outage: Annotated[
        list[str] | None,
        typer.Option("--outage", help="START:LEN seconds without coverage (repeatable)."),
    ] = None,
    queue: Annotated[
        Path, typer.Option("--queue", help="Store-and-forward directory (kept across runs).")
    ] = Path("out/edge/queue"),
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Data logger directory (the SD card).")
    ] = None,
    command_key: Annotated[
        str | None,
        typer.Option(
            "--command-key",
            envvar="CELLWARDEN_COMMAND_KEY",
            help="Secret that authorises commands such as clear_faults.",
        ),
    ] = None,
    debug_json: Annotated[
        bool, typer.Option("--debug-json", help="Send JSON payloads instead of CBOR+zstd.")
    ] = False,
    drain: Annotated[
        float, typer.Option("--drain", min=0, help="Wall seconds to empty the queue at the end.")
    ] = 10.0,
    clock_epoch: Annotated[
        float | None,
        typer.Option(
            "--clock-epoch",
            help="Unix time of the simulated clock's zero, added to record times (default: "
            "the wall clock when the queue was first used; 0 keeps the simulated clock).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run a scenario with its edge: summaries, cells, events, position and health into the
    store-and-forward queue and over the simulated cellular link to the broker (docs/edge.md)."""
    from cellwarden.simulation.edge_run import EdgeOptions, parse_outage, run_edge

    spec = _scenario(scenario)
    try:
        options = EdgeOptions(
            device_id=device_id, fleet=fleet, broker=broker, ca_file=ca_file, queue_dir=queue,
            log_dir=log_dir, duration_s=duration, speed=speed,
            outages=[parse_outage(text) for text in outage or []], command_key=command_key,
            debug_json=debug_json, drain_wall_s=drain,
            clock_epoch_s=clock_epoch,
        )  # fmt: skip
        summary = run_edge(spec, options)
    except (ConfigError, ValueError, OSError) as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps(summary, indent=2, default=float))
        return
    console.print(
        f"{summary['device_id']}: {summary['simulated_s']:.0f} s simulated at "
        f"{summary['speed']:.0f}× real time; produced {summary['produced']}, acknowledged "
        f"{summary['acknowledged']}, queued {summary['queued']}, dropped {summary['dropped']}; "
        f"{summary['bytes_sent'] / 1e3:.1f} kB sent "
        f"({summary['bytes_per_30_days'] / 1e6:.2f} MB per 30 days)",
        highlight=False,
    )
    for error in summary["errors"]:
        error_console.print(f"[yellow]warning:[/] {error}", highlight=False)


@app.command("serve-modbus")
def serve_modbus(
    scenario: Annotated[
        str, typer.Argument(help="A built-in scenario name or a scenario TOML file.")
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Modbus TCP port (0: any free one).")
    ] = 502,
    rtu: Annotated[
        str | None,
        typer.Option("--rtu", help="Serve Modbus RTU on this serial device instead of TCP."),
    ] = None,
    baudrate: Annotated[int, typer.Option("--baudrate", min=1, help="RTU baud rate.")] = 19200,
    parity: Annotated[str, typer.Option("--parity", help="RTU parity: N, E or O.")] = "E",
    unit_id: Annotated[int, typer.Option("--unit-id", min=1, max=247, help="Modbus unit id.")] = 1,
    speed: Annotated[
        float,
        typer.Option("--speed", min=0.001, help="Pace the simulated clock at K times real time."),
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Cut the run to this many simulated seconds.")
    ] = None,
) -> None:
    """Run a scenario on a real-time (or --speed K) clock and serve it as SunSpec models 1,
    802, 803 and 804 over Modbus TCP or RTU (see docs/modbus-sunspec.md)."""
    from cellwarden.comms.modbus_server import RtuEndpoint, TcpEndpoint
    from cellwarden.simulation.runner import Simulation
    from cellwarden.simulation.sunspec_service import attach_sunspec

    spec = _scenario(scenario)
    try:
        simulation = Simulation(spec, duration_s=duration)
    except ConfigError as error:
        raise _fail(error) from None
    try:
        endpoint = (
            TcpEndpoint(host, port)
            if rtu is None
            else RtuEndpoint(rtu, baudrate, parity.upper(), 1)  # type: ignore[arg-type]
        )
        server = attach_sunspec(simulation, endpoint, unit_id)
        server.start()
    except (ValueError, OSError) as error:
        close = getattr(simulation.controller, "close", None)
        if close is not None:
            close()  # the buses the run would have closed
        raise _fail(error) from None
    where = f"{host}:{server.port}" if rtu is None else str(endpoint)
    error_console.print(
        f"serving [bold]{spec.name}[/] as SunSpec unit {unit_id} on [bold]{where}[/] "
        f"(base address 40000) at {speed:g}× real time for {simulation.duration_s:.0f} s"
    )
    try:
        simulation.run(speed=speed)
    except KeyboardInterrupt:
        error_console.print("stopped")
    finally:
        server.stop()


@app.command()
def protection(
    scenario: Annotated[str, typer.Argument(help="A built-in scenario name or a TOML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rules as JSON.")] = False,
) -> None:
    """Show the protection and diagnosis table of a scenario's first string."""
    from cellwarden.bms.protection_table import build_table

    spec = _scenario(scenario)
    pack = spec.system.strings[0].pack
    rules = build_table(pack.cell, pack.parallel, spec.bms)
    rows = [
        {
            "code": r.code,
            "name": r.name,
            "quantity": r.quantity,
            "trips": f"{'>' if r.above else '<'} {r.threshold:.4g}",
            "hysteresis": r.hysteresis,
            "debounce_s": r.debounce_s,
            "recovery": r.recovery.value
            + (f" after {r.recovery_s:g} s" if r.recovery.value == "auto" else "")
            + (f" while {r.released_by}" if r.released_by else ""),
            "action": r.action.name.lower(),
            "task": r.task.value,
            "armed_by": r.armed_by or "",
        }
        for r in rules
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"protection table of {spec.name}")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@app.command()
def campaign(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(help="Scenario names or TOML files (default: every built-in scenario)."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--test", help="Run only tests whose name contains this.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            max=256,
            help="Tests run at once, each in its own process (default: one per CPU).",
        ),
    ] = None,
) -> None:
    """Run the certification-style test campaign against ground truth; exit 1 on any failure."""
    from cellwarden.simulation import campaign as campaign_module
    from cellwarden.simulation.catalogue import builtin_scenarios

    chosen = [_scenario(name) for name in scenarios] if scenarios else builtin_scenarios()
    if not as_json:
        for scenario in chosen:
            if not campaign_module.tests_for(scenario):
                error_console.print(
                    f"{scenario.name}: no campaign tests for the "
                    f"{scenario.system.architecture.value} architecture yet"
                )

    def show(outcome: campaign_module.TestResult) -> None:
        if not as_json:
            mark = "[green]PASS[/]" if outcome.passed else "[bold red]FAIL[/]"
            console.print(f"{mark} {outcome.scenario}: {outcome.test}", highlight=False)

    workers = jobs or len(os.sched_getaffinity(0))
    results = campaign_module.run_campaign(chosen, only, show, jobs=workers)
    passed = all(r.passed for r in results)
    if as_json:
        print(json.dumps({"passed": passed, "results": [r.as_dict() for r in results]}, indent=2))
    else:
        table = Table(title="campaign")
        for column in ("scenario", "test", "result", "detail"):
            table.add_column(column, overflow="fold")
        for r in results:
            table.add_row(r.scenario, r.test, "pass" if r.passed else "FAIL", r.detail)
        console.print(table)
        console.print(
            f"{sum(r.passed for r in results)} passed, {sum(not r.passed for r in results)} failed"
        )
    if not passed:
        raise typer.Exit(code=1)


@app.command()
def design(
    sector: Annotated[
        str,
        typer.Option(
            "--sector",
            help="Field of use: e-scooter, e-bike, golf-cart, utility-cart, agv, light-ev, "
            "forklift, cargo-ev, ess, telecom, marine (picks the duty profile).",
        ),
    ],
    cells: Annotated[
        int | None,
        typer.Option("--cells", help="Series cells per string (exclusive with --voltage-v)."),
    ] = None,
    voltage_v: Annotated[
        float | None, typer.Option("--voltage-v", help="Nominal voltage per string [V].")
    ] = None,
    chemistry: Annotated[
        str | None,
        typer.Option("--chemistry", help="lfp, nmc or lto (default: the sector's usual one)."),
    ] = None,
    cell: Annotated[
        str | None,
        typer.Option("--cell", help="A built-in cell name or cell TOML file, instead of a pick."),
    ] = None,
    capacity_ah: Annotated[
        float | None,
        typer.Option("--capacity-ah", help="Capacity per string [Ah] (sets the parallel count)."),
    ] = None,
    peak_current_a: Annotated[
        float | None,
        typer.Option("--peak-current-a", help="Peak current of the whole system [A]."),
    ] = None,
    strings: Annotated[int, typer.Option("--strings", help="Number of strings.")] = 1,
    topology: Annotated[
        str | None,
        typer.Option("--topology", help="parallel, series or distributed (with --strings 2+)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the design as JSON.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the design as a scenario TOML file.")
    ] = None,
) -> None:
    """Recommend an architecture (standalone, master-slave, multi-master) and its config."""
    from cellwarden.design import Requirements, default_file_name, design_system, write_scenario

    requirements = Requirements(
        sector=sector, cells=cells, voltage_v=voltage_v, chemistry=chemistry, cell=cell,
        capacity_ah=capacity_ah, peak_current_a=peak_current_a, strings=strings,
        topology=topology,
    )  # fmt: skip
    try:
        result = design_system(requirements)
        if out is not None:
            write_scenario(result, out)
    except (ConfigError, OSError) as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps(result.as_dict(str(out) if out else None), indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]{result.architecture.value}[/]: {result.modules_summary}")
    console.print(
        f"{f'{result.strings} × ' if result.strings > 1 else ''}"
        f"{result.series}S{result.parallel}P {result.cell_ref} "
        f"({result.chemistry}): {result.system_nominal_voltage_v:.1f} V nominal, "
        f"{result.system_max_voltage_v:.1f} V max, {result.system_capacity_ah:g} Ah, "
        f"{result.energy_kwh:.1f} kWh",
        highlight=False,
    )
    for title, lines in (("why", result.reasons), ("notes", result.notes), ("comms", result.comms)):
        if lines:
            console.print(f"{title}:")
            for line in lines:
                console.print(f"  - {line}", highlight=False, markup=False)
    if out is not None:
        console.print(f"scenario written to [bold]{out}[/] (run it: cellwarden simulate {out})")
    else:
        console.print(f"write it as a scenario with --out {default_file_name(result)}")


@app.command()
def identify(
    pulse: Annotated[
        list[Path],
        typer.Option(
            "--pulse",
            help="Pulse (HPPC) test: CSV or Parquet with time_s,current_a,voltage_v,temp_c "
            "(s, A, V, °C). Repeat with --ocv for each chamber temperature.",
        ),
    ],
    ocv: Annotated[
        list[Path],
        typer.Option(
            "--ocv", help="Slow (C/20) discharge from full, same columns; one per --pulse."
        ),
    ],
    capacity_ah: Annotated[
        float,
        typer.Option(
            "--capacity-ah",
            help="The rated capacity [Ah]: the C-rates of the analysis; the file gets the "
            "capacity the slow test measures.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Cell TOML file to write.")],
    chemistry: Annotated[
        str | None,
        typer.Option(
            "--chemistry",
            help="Base chemistry (LFP, NMC, LTO or a TOML file); "
            "default: the one whose OCV is closest.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Cell name (default: the output file's stem).")
    ] = None,
    single_temperature: Annotated[
        bool,
        typer.Option(
            "--single-temperature",
            help="Write the tested temperatures' rows only (no temperature dependence "
            "borrowed from the base chemistry).",
        ),
    ] = False,
) -> None:
    """Fit a cell model (OCV, R0, two RC pairs, capacity) from pulse and slow tests."""
    from cellwarden.bms.identification import identify as identify_cell
    from cellwarden.bms.trace_replay import read_trace
    from cellwarden.model.library import load_cell

    try:
        if len(pulse) != len(ocv):
            raise ConfigError(
                f"--pulse and --ocv come in pairs, one per chamber temperature (got "
                f"{len(pulse)} --pulse and {len(ocv)} --ocv)"
            )
        result = identify_cell(
            [read_trace(path) for path in pulse],
            [read_trace(path) for path in ocv],
            capacity_ah,
            chemistry=chemistry,
            name=name or out.stem,
            temperature_from_base=not single_temperature,
        )
        result.write(out)
        load_cell(str(out))  # the written file must load as it is
    except ConfigError as error:
        raise _fail(error) from None
    for fit in result.fits:
        title = (
            f"{result.cell.name}: base chemistry {result.base_chemistry}, test at "
            f"{fit.temp_c:.1f} °C, capacity {fit.capacity_ah:.3f} Ah"
        )
        table = Table(title=title)
        for column in ("SoC %", "R0 mΩ", "R1 mΩ", "tau1 s", "R2 mΩ", "tau2 s", "fit rms mV"):
            table.add_column(column, justify="right")
        for level in fit.levels:
            table.add_row(
                f"{100 * level.soc:.1f}", f"{1000 * level.r0_ohm:.3f}",
                f"{1000 * level.r1_ohm:.3f}", f"{level.tau1_s:.1f}",
                f"{1000 * level.r2_ohm:.3f}", f"{level.tau2_s:.0f}",
                (f"{level.rms_mv:.2f}" if level.rms_mv == level.rms_mv else "-")
                + (" *" if level.filled else ""),
            )  # fmt: skip
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"cell written to [bold]{out}[/]")


@app.command()
def estimate(
    cell: Annotated[str, typer.Option("--cell", help="Cell TOML file or built-in cell name.")],
    trace: Annotated[
        Path,
        typer.Option("--trace", help="Trace, CSV or Parquet: time_s,current_a,voltage_v,temp_c."),
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV to write: time_s,soc_pct,...")],
    initial_soc: Annotated[
        float | None,
        typer.Option(
            "--initial-soc",
            help="Start from this SoC [%] instead of the power-up "
            "estimate from the first voltage (to test convergence).",
        ),
    ] = None,
) -> None:
    """Replay a recorded single-cell trace through the BMS's SoC estimator."""
    from cellwarden.bms.trace_replay import read_trace, replay_trace
    from cellwarden.model.library import load_cell

    try:
        if initial_soc is not None and not 0.0 <= initial_soc <= 100.0:
            raise ConfigError(f"--initial-soc must lie within 0..100 % (got {initial_soc})")
        spec = load_cell(cell)
        recorded = read_trace(trace)
    except ConfigError as error:
        raise _fail(error) from None
    result = replay_trace(spec, recorded, initial_soc_pct=initial_soc)
    result.to_csv(out, index=False)
    soc = result["soc_pct"]
    last = result.iloc[-1]
    message = (
        f"{len(result)} rows, {recorded['time_s'].iloc[-1] - recorded['time_s'].iloc[0]:.0f} s: "
        f"SoC {soc.iloc[0]:.1f} % → {soc.iloc[-1]:.1f} %; capacity {last['capacity_ah']:.3f} Ah "
        f"(SoH {last['soh_capacity_pct']:.1f} %), resistance SoH "
        f"{last['soh_resistance_pct']:.1f} %"
    )
    if "true_soc_pct" in recorded.columns:  # a simulated trace: compare with the truth
        import numpy as np
        import pandas as pd

        from cellwarden.bms.soc_scoring import SETTLE_S, score

        truth = pd.to_numeric(recorded["true_soc_pct"], errors="coerce").to_numpy(dtype=float)
        known = np.isfinite(truth)
        if known.any():
            found = score(result["time_s"][known], soc[known], truth[known])
            message += (
                f"; against true_soc_pct: RMSE {found.rmse_pct:.2f} %, max {found.max_pct:.2f} %;"
                f" after {SETTLE_S / 60:.0f} min RMSE {found.rmse_after_settle_pct:.2f} %, max "
                f"{found.max_after_settle_pct:.2f} %; error at {SETTLE_S / 60:.0f} min "
                f"{found.error_at_settle_pct:.2f} %"
            )
    console.print(message, highlight=False)
    console.print(f"estimate written to [bold]{out}[/]")


# --- the data logger's files (docs/datalogger.md) -----------------------------------------------
logger_app = typer.Typer(
    help="The data logger's files (the BCU's MicroSD card).", no_args_is_help=True
)
app.add_typer(logger_app, name="logger")
LOGGER_SKIPPED_SHOWN = 20  # skipped frames listed one by one


@logger_app.command("export")
def logger_export(
    log_dir: Annotated[Path, typer.Argument(help="The data logger's directory (seg-*.cwlog).")],
    out: Annotated[
        Path, typer.Option("--out", help="File to write: .parquet or .csv (by the suffix).")
    ],
) -> None:
    """Export every record of a data log to Parquet or CSV, skipping torn or corrupt frames."""
    from cellwarden.edge.datalogger import export_log

    try:
        report = export_log(log_dir, out)
    except (ValueError, OSError) as error:
        raise _fail(error) from None
    console.print(
        f"exported {report.records} records from {report.segments} "
        f"segment{'' if report.segments == 1 else 's'} to {out}; "
        f"skipped {len(report.skipped)} torn/corrupt frames "
        f"({report.torn} torn, {report.corrupt} corrupt)",
        highlight=False, markup=False,
    )  # fmt: skip
    for frame in report.skipped[:LOGGER_SKIPPED_SHOWN]:
        error_console.print(
            f"skipped {frame.reason} frame: {frame.segment} at byte {frame.offset} "
            f"({frame.size_bytes} bytes, {frame.detail})",
            highlight=False, markup=False,
        )  # fmt: skip
    if len(report.skipped) > LOGGER_SKIPPED_SHOWN:
        error_console.print(f"... and {len(report.skipped) - LOGGER_SKIPPED_SHOWN} more")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
