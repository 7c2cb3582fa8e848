"""``cellwarden fleet ...``: simulate fleets over years, forecast SoH and end of life, analyse
and score the analytics against a simulated fleet's truth."""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cellwarden.cli_output import console, fail

fleet_app = typer.Typer(
    help="Fleet histories: simulate years of a mixed fleet, forecast SoH and end of life, "
    "rank degradation, find developing faults.",
    no_args_is_help=True,
)

HistoryOption = Annotated[
    Path, typer.Option("--history", help="Fleet history, .csv or .parquet (docs/fleet-history.md).")
]
AsOfOption = Annotated[
    str | None, typer.Option("--as-of", help="Use only rows up to this day (YYYY-MM-DD).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ForecastDayOption = Annotated[
    str, typer.Option("--as-of", help="Forecast from this day (YYYY-MM-DD).")
]
HorizonOption = Annotated[int, typer.Option(min=1, max=3650, help="Days ahead.")]
EolOption = Annotated[
    float, typer.Option(min=1.0, max=99.0, help="SoH (%) that ends a pack's first life.")
]


def _day(text: str | None, name: str = "--as-of") -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{name} {text!r} is not a date (YYYY-MM-DD)") from None


def _history(path: Path):
    from cellwarden.telemetry.fleet_history import HistoryError, read_history

    try:
        history = read_history(path)
    except HistoryError as error:
        raise fail(error) from None
    for problem in history.problems[:20]:
        console.print(f"[yellow]skipped line {problem.line}:[/] {problem.reason}", highlight=False)
    if len(history.problems) > 20:
        console.print(f"[yellow]... and {len(history.problems) - 20} more bad rows[/]")
    if history.rows.empty:
        raise fail(f"{path}: no usable rows")
    return history


@fleet_app.command("simulate")
def simulate(
    packs: Annotated[int, typer.Option(min=1, max=100_000, help="Packs in the fleet.")],
    days: Annotated[int, typer.Option(min=1, max=36_500, help="Days to simulate.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for history and truth.")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same fleet).")] = 0,
    mix: Annotated[
        str | None, typer.Option(help="Shares by kind, e.g. e-scooter:40,ess:10 (default mix).")
    ] = None,
    sites: Annotated[
        str | None,
        typer.Option(help="Sites by name (madrid,dubai) or NAME=MEAN/AMPLITUDE/PEAK[/south] °C."),
    ] = None,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2023-01-01",
    ageing_law: Annotated[
        str, typer.Option(help="plant, schmalstieg2014 (NMC) or wang2011 (LFP).")
    ] = "plant",
    fault_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of packs given a developing fault.")
    ] = 0.2,
    abuse: Annotated[
        float,
        typer.Option(min=0.0, max=10.0, help="Abuse rates: 0 none, 1 as documented (x scale)."),
    ] = 0.0,
    history_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Simulate a mixed fleet day by day with ageing, developing faults and abuse."""
    from cellwarden.simulation.fleet.kinds import FleetSpecError
    from cellwarden.simulation.fleet.output import HISTORY_NAMES, write_run
    from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet

    if history_format not in HISTORY_NAMES:
        raise fail(f"--format {history_format!r}: use parquet or csv")
    first_day = _day(start, "--start")
    began = time.perf_counter()
    try:
        spec = FleetSpec(
            packs=packs, days=days, seed=seed, mix=mix, sites=sites, start=first_day,
            ageing_law=ageing_law, fault_fraction=fault_fraction, abuse=abuse,
        )  # fmt: skip
        run = simulate_fleet(spec)
    except FleetSpecError as error:
        raise fail(error) from None
    path = write_run(run, out, history_format)
    faults = run.truth_packs[run.truth_packs["fault_kind"] != ""]
    console.print(
        f"{packs} packs x {days} days ({len(run.history)} rows, {len(faults)} faults) in "
        f"{time.perf_counter() - began:.1f} s -> {path}, truth in {out / 'truth'}",
        highlight=False,
    )


@fleet_app.command("forecast")
def forecast_command(
    history_path: HistoryOption,
    as_of: ForecastDayOption,
    out: Annotated[Path, typer.Option("--out", help="Forecast CSV to write.")],
    horizon_days: HorizonOption = 60,
    eol_soh_pct: EolOption = 80.0,
    as_json: JsonOption = False,
) -> None:
    """SoH at the horizon with p10/p90, and the end-of-life date with its band, per pack."""
    from cellwarden.cloud.analytics.fleet_analysis import records
    from cellwarden.cloud.analytics.soh_forecast import (
        FORECAST_COLUMNS,
        ForecastError,
        ForecastSettings,
        forecast,
    )

    history = _history(history_path)
    settings = ForecastSettings(horizon_days=horizon_days, eol_soh_pct=eol_soh_pct)
    try:
        result = forecast(history, _day(as_of), settings)
    except ForecastError as error:
        raise fail(error) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    result[list(FORECAST_COLUMNS)].to_csv(out, index=False)
    skipped = result.attrs.get("skipped", {})
    if as_json:
        typer.echo(json.dumps(records(result), indent=1))
        return
    console.print(f"{len(result)} packs forecast {horizon_days} days from {as_of} -> {out}")
    for pack_id, reason in skipped.items():
        console.print(f"[yellow]left out {pack_id}:[/] {reason}", highlight=False)


@fleet_app.command("analyse")
def analyse(
    history_path: HistoryOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for the result CSV files.")],
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """Degradation ranking with peer outliers, forecast, fault prognosis, rotation advice."""
    from cellwarden.cloud.analytics.fleet_analysis import analyse_fleet
    from cellwarden.cloud.analytics.soh_forecast import ForecastError
    from cellwarden.telemetry.fleet_history import HistoryError

    history = _history(history_path)
    try:
        analysis = analyse_fleet(history, _day(as_of))
    except (ForecastError, HistoryError) as error:
        raise fail(error) from None
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ranking", "forecast", "prognosis", "rotation"):
        getattr(analysis, name).to_csv(out / f"{name}.csv", index=False)
    if as_json:
        typer.echo(json.dumps(analysis.to_json(), indent=1))
        return
    console.print(f"as of {analysis.as_of}: {len(analysis.ranking)} packs ranked, "
                  f"{int(analysis.ranking['outlier'].sum())} outliers, "
                  f"{len(analysis.prognosis)} developing faults, "
                  f"{len(analysis.rotation)} rotations advised -> {out}")  # fmt: skip
    for flag in analysis.prognosis.itertuples():
        console.print(f"  {flag.pack_id}: {flag.fault_kind} since {flag.first_flag_date} - "
                      f"{flag.reason}", highlight=False)  # fmt: skip


@fleet_app.command("score")
def score(
    run_dir: Annotated[Path, typer.Option("--run", help="A `fleet simulate` output directory.")],
    as_of: ForecastDayOption,
    horizon_days: HorizonOption = 60,
    eol_soh_pct: EolOption = 80.0,
    as_json: JsonOption = False,
) -> None:
    """Score the forecast (as of a day) and the prognosis (over the whole run) against the
    run's truth."""
    from cellwarden.cloud.analytics.history_matrix import HistoryMatrix
    from cellwarden.cloud.analytics.prognosis import first_flags
    from cellwarden.cloud.analytics.soh_forecast import ForecastSettings, forecast
    from cellwarden.simulation.fleet.scoring import score_forecast, score_prognosis

    histories = sorted(run_dir.glob("history.*"))
    truth_dir = run_dir / "truth"
    if not histories or not (truth_dir / "daily.parquet").is_file():
        raise fail(f"{run_dir}: not a `fleet simulate` output (history.* and truth/ expected)")
    history = _history(histories[0])
    truth_daily = pd.read_parquet(truth_dir / "daily.parquet")
    truth_packs = pd.read_csv(truth_dir / "packs.csv", dtype=str, keep_default_na=False)
    day = _day(as_of)
    try:
        predicted = forecast(history, day, ForecastSettings(horizon_days, eol_soh_pct))
        forecast_score = score_forecast(predicted, truth_daily, day, horizon_days, eol_soh_pct)
    except ValueError as error:  # a ForecastError, or as-of and horizon outside the truth
        raise fail(error) from None
    result = {
        "forecast": forecast_score.as_dict(),
        "prognosis": score_prognosis(
            first_flags(HistoryMatrix.from_history(history)), truth_packs
        ).as_dict(),
    }
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    for part, values in result.items():
        console.print(f"[bold]{part}[/]")
        for key, value in values.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            console.print(f"  {key}: {shown}", highlight=False)


@fleet_app.command("feed")
def feed(
    broker: Annotated[str, typer.Option(
        "--broker", envvar="CELLWARDEN_BROKER",
        help="mqtt://[:PASSWORD@]host:port or mqtts://...: each pack connects as its pack_id.")],
    fleet: Annotated[str, typer.Option(help="Fleet id in the topics (the cloud's fleet).")],
    run_dir: Annotated[Path | None, typer.Option(
        "--run", help="A `fleet simulate` output directory (its history.*).")] = None,
    history_path: Annotated[Path | None, typer.Option(
        "--history", help="Fleet history, .csv or .parquet (docs/fleet-history.md).")] = None,
    password_file: Annotated[Path | None, typer.Option(
        "--password-file", help="DEVICE:PASSWORD lines; a pack not in it uses the URL's.")]
    = None,
    packs: Annotated[int | None, typer.Option(
        min=1, help="Feed the first N packs (by pack_id).")] = None,
    days: Annotated[int | None, typer.Option(
        min=1, help="Feed the history's first D days.")] = None,
    period_s: Annotated[int, typer.Option(
        "--period-s", min=1, max=600, help="Seconds between a day's summaries.")] = 300,
    connections: Annotated[int, typer.Option(
        min=1, max=512, help="Packs fed at once (one MQTT connection each).")] = 4,
    ca_file: Annotated[Path | None, typer.Option(
        "--ca", help="CA certificate to verify an mqtts:// broker.")] = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Publish a fleet history to a broker as its packs' summaries (a synthetic day per row),
    as fast as the broker takes them; the cloud derives the rows back
    (`cloud history derive`)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from cellwarden.simulation.fleet.feed import (
        FeedError,
        feed_history,
        read_passwords,
        records_per_day,
        select_rows,
    )
    from cellwarden.telemetry.broker_url import BrokerUrl

    if (run_dir is None) == (history_path is None):
        raise fail("give either --run DIR or --history FILE")
    if run_dir is not None:
        found = sorted(run_dir.glob("history.*"))
        if not found:
            raise fail(f"{run_dir}: no history.* (a `fleet simulate` output directory?)")
        history_path = found[0]
    try:
        url = BrokerUrl.parse(broker)
        passwords = read_passwords(password_file) if password_file else {}
    except (ValueError, OSError) as error:
        raise fail(error) from None
    if url.username:
        console.print(f"note: user {url.username!r} of the URL is not used: each pack "
                      "connects as its pack_id", highlight=False)  # fmt: skip
    rows = select_rows(_history(history_path).rows, packs, days)
    if rows["date"].max() > pd.Timestamp.now() + pd.Timedelta(days=1):
        console.print("[yellow]warning:[/] rows dated more than a day ahead: ingest "
                      "quarantines records from the future")  # fmt: skip
    progress = Progress(TextColumn("feeding"), BarColumn(),
                        TextColumn("{task.completed}/{task.total} pack-days"),
                        TimeRemainingColumn(), transient=True, disable=as_json)  # fmt: skip
    task = progress.add_task("feed", total=len(rows))
    try:
        with progress:
            report = feed_history(
                rows, url, fleet, passwords, period_s=period_s, connections=connections,
                ca_file=ca_file, progress=lambda done, _: progress.update(task, completed=done),
            )  # fmt: skip
    except (FeedError, ValueError) as error:
        raise fail(error) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=1))
        return
    console.print(
        f"{report.pack_days} pack-days of {report.packs} packs ({records_per_day(period_s)} "
        f"summaries a day, {report.records} in all) fed to fleet {fleet!r} in "
        f"{report.wall_s:.1f} s: {report.records_per_s:,.0f} records/s, "
        f"{report.pack_days_per_s:,.1f} pack-days/s",
        highlight=False,
    )
