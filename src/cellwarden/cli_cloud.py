"""``cellwarden cloud ...``: serve the platform, run an ingest worker, manage the registry."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cellwarden.cli_output import console, error_console, fail

if TYPE_CHECKING:
    from cellwarden.cloud.store.cloud_store import CloudStore

cloud_app = typer.Typer(
    help="The fleet platform: MQTT ingest, storage, alarms, the API and the web dashboard.",
    no_args_is_help=True,
)
DEFAULT_DB = "sqlite:///out/cloud/cloud.db"

DbOption = Annotated[
    str,
    typer.Option("--db", envvar="CELLWARDEN_DB",
                 help="sqlite:///PATH (default) or postgresql://user@host:port/db"),
]  # fmt: skip
BrokerOption = Annotated[
    str | None,
    typer.Option("--broker", envvar="CELLWARDEN_BROKER",
                 help="mqtt://cloud:PASSWORD@host:port or mqtts://... (none: no ingest)"),
]  # fmt: skip
CaOption = Annotated[
    Path | None, typer.Option("--ca", help="CA certificate to verify an mqtts:// broker.")
]


def _store(db: str, upgrade: bool = True):
    from cellwarden.cloud.store.cloud_store import open_store
    from cellwarden.cloud.store.database import StoreError

    if db.startswith("sqlite:///"):
        Path(db.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return open_store(db, upgrade=upgrade)
    except StoreError as error:
        raise fail(error) from None


@cloud_app.command("serve")
def serve(
    db: DbOption = DEFAULT_DB,
    broker: BrokerOption = None,
    host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(min=0, max=64, help="Ingest processes.")] = 1,
    ca_file: CaOption = None,
    smtp: Annotated[str, typer.Option(help="HOST:PORT of the mail relay for alarms.")]
    = "127.0.0.1:25",
    mail_from: Annotated[str, typer.Option(help="Sender of alarm e-mails.")]
    = "cellwarden@localhost",
    raw_days: Annotated[float, typer.Option(min=1, help="Days raw telemetry is kept.")] = 30.0,
    minute_days: Annotated[float, typer.Option(min=1, help="Days 1-minute rollups are kept.")]
    = 400.0,
) -> None:  # fmt: skip
    """Serve the API and dashboard, with WORKERS ingest processes and the scheduler."""
    from cellwarden.cloud.service import ServeConfig
    from cellwarden.cloud.service import serve as run_service
    from cellwarden.cloud.store.rollup import Retention
    from cellwarden.telemetry.broker_url import BrokerUrl

    _store(db).close()  # a bad URL or a newer schema is reported here, before anything starts
    try:
        if broker is not None:
            BrokerUrl.parse(broker)
        smtp_host, smtp_port = smtp.rsplit(":", 1)
        config = ServeConfig(
            db_url=db, broker_url=broker, host=host, port=port, workers=workers,
            ca_file=ca_file, smtp_host=smtp_host, smtp_port=int(smtp_port), mail_from=mail_from,
            webhook_secret=os.environ.get("CELLWARDEN_WEBHOOK_SECRET"),
            retention=Retention(raw_days=raw_days, minute_days=minute_days),
        )  # fmt: skip
    except ValueError as error:
        raise fail(error) from None
    console.print(f"dashboard and API on http://{host}:{port}/ (OpenAPI: /api/docs)",
                  highlight=False)  # fmt: skip
    run_service(config)


@cloud_app.command("ingest")
def ingest(
    broker: Annotated[str, typer.Option("--broker", envvar="CELLWARDEN_BROKER",
                                        help="mqtt://cloud:PASSWORD@host:port")],
    db: DbOption = DEFAULT_DB,
    name: Annotated[str, typer.Option(help="Worker name: its MQTT client id (keep it stable).")]
    = "ingest-0",
    group: Annotated[str, typer.Option(help="Shared-subscription group.")] = "ingest",
    ca_file: CaOption = None,
) -> None:  # fmt: skip
    """Run one ingest worker (start more, on this machine or others, to share the load)."""
    from cellwarden.cloud.ingest.process import WorkerConfig, run_worker
    from cellwarden.telemetry.broker_url import BrokerUrl

    _store(db, upgrade=False).close()  # migrations are `cloud serve`'s or `cloud migrate`'s
    try:
        BrokerUrl.parse(broker)
    except ValueError as error:
        raise fail(error) from None
    run_worker(WorkerConfig(db, broker, name, group, ca_file))


@cloud_app.command("migrate")
def migrate(db: DbOption = DEFAULT_DB) -> None:
    """Bring the database to this version's schema."""
    from cellwarden.cloud.store.migrations import current_version

    store = _store(db)
    console.print(f"schema version {current_version(store.db)}")
    store.close()


orgs_app = typer.Typer(help="Organisations.", no_args_is_help=True)
fleets_app = typer.Typer(help="Fleets (the fleet id devices use in their topics).",
                         no_args_is_help=True)  # fmt: skip
packs_app = typer.Typer(help="Packs: devices known to ingest.", no_args_is_help=True)
users_app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)
history_app = typer.Typer(help="Daily pack figures of a fleet as fleet history files.",
                          no_args_is_help=True)  # fmt: skip
analytics_app = typer.Typer(help="Fleet analytics: ranking, forecast, prognosis, rotation.",
                            no_args_is_help=True)  # fmt: skip
cloud_app.add_typer(orgs_app, name="orgs")
cloud_app.add_typer(fleets_app, name="fleets")
cloud_app.add_typer(packs_app, name="packs")
cloud_app.add_typer(users_app, name="users")
cloud_app.add_typer(history_app, name="history")
cloud_app.add_typer(analytics_app, name="analytics")
FleetOption = Annotated[str, typer.Option("--fleet", help="The fleet (its name).")]


def _registry_do(db: str, action):
    from cellwarden.cloud.store.registry import RegistryError

    store = _store(db)
    try:
        return action(store.registry)
    except RegistryError as error:
        raise fail(error) from None
    finally:
        store.close()


@contextlib.contextmanager
def _fleet_store(db: str, fleet: str) -> Iterator[tuple[CloudStore, int]]:
    """(the store, the fleet's id), the store closed after; an unknown fleet fails."""
    from cellwarden.cloud.store.registry import RegistryError

    store = _store(db)
    try:
        yield store, store.registry.fleet(fleet)[0]
    except RegistryError as error:
        raise fail(error) from None
    finally:
        store.close()


@orgs_app.command("add")
def orgs_add(name: str, db: DbOption = DEFAULT_DB) -> None:
    """Create an organisation."""
    org_id = _registry_do(db, lambda registry: registry.add_org(name))
    console.print(f"organisation {name!r} (id {org_id})", highlight=False)


@fleets_app.command("add")
def fleets_add(
    name: str, org: Annotated[str, typer.Option(help="Owning organisation.")],
    db: DbOption = DEFAULT_DB,
) -> None:  # fmt: skip
    """Create a fleet in an organisation."""
    _registry_do(db, lambda registry: registry.add_fleet(registry.org_id(org), name))
    console.print(f"fleet {name!r} in {org!r}", highlight=False)


@packs_app.command("add")
def packs_add(
    device_id: str,
    fleet: Annotated[str, typer.Option(help="The device's fleet.")],
    db: DbOption = DEFAULT_DB,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    chemistry: Annotated[str | None, typer.Option()] = None,
    cells: Annotated[int | None, typer.Option(min=1, max=4096)] = None,
    capacity_ah: Annotated[float | None, typer.Option("--capacity-ah", min=0.001)] = None,
) -> None:  # fmt: skip
    """Register a device so that ingest accepts its telemetry."""
    _registry_do(
        db,
        lambda registry: registry.add_pack(
            device_id, fleet, name, chemistry=chemistry, cell_count=cells, capacity_ah=capacity_ah
        ),
    )
    console.print(f"pack {device_id!r} in fleet {fleet!r}", highlight=False)


@users_app.command("add")
def users_add(
    name: str,
    org: Annotated[str, typer.Option(help="Organisation the role applies to.")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "viewer",
    email: Annotated[str | None, typer.Option(help="For alarm e-mails.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:  # fmt: skip
    """Create a user; prints the API token once (it is stored only as a hash)."""
    from cellwarden.cloud.store.registry import Role

    try:
        chosen = Role(role)
    except ValueError:
        raise fail(f"role {role!r}: choose admin, operator or viewer") from None
    token = _registry_do(
        db, lambda registry: registry.add_user(name, registry.org_id(org), chosen, email)
    )
    console.print(f"user {name!r} ({chosen.value} in {org!r}); token:", highlight=False)
    print(token)


@history_app.command("import")
def history_import(
    file: Annotated[Path, typer.Argument(help="Fleet history, .csv or .parquet.")],
    fleet: FleetOption,
    db: DbOption = DEFAULT_DB,
    create_packs: Annotated[bool, typer.Option(
        "--create-packs", help="Register packs the fleet does not have (else their rows are "
        "refused).")] = False,
) -> None:  # fmt: skip
    """Store a history file's rows in the fleet, replacing the days they hold; prints every
    row left out with its line. Exit code 1 when nothing could be written."""
    from cellwarden.cloud.store.daily_history import read_import
    from cellwarden.telemetry.fleet_history import HistoryError

    try:
        history = read_import(file)
    except HistoryError as error:
        error_console.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(1) from None
    with _fleet_store(db, fleet) as (store, fleet_id):
        report = store.daily.import_history(fleet_id, history, create_packs)
    console.print(f"{report.rows_written} rows written to fleet {fleet!r}, "
                  f"{len(report.packs_created)} packs created", highlight=False)  # fmt: skip
    for problem in report.problems:
        console.print(f"[yellow]line {problem.line}:[/] {problem.reason}", highlight=False)
    if not report.rows_written:
        error_console.print(f"[bold red]error:[/] nothing written from {file}", highlight=False)
        raise typer.Exit(1)


@history_app.command("export")
def history_export(
    fleet: FleetOption,
    out: Annotated[Path, typer.Option("--out", help="File to write, .csv or .parquet.")],
    db: DbOption = DEFAULT_DB,
) -> None:  # fmt: skip
    """Write the fleet's daily rows as a fleet history file."""
    from cellwarden.telemetry.fleet_history import HistoryError, write_history

    with _fleet_store(db, fleet) as (store, fleet_id):
        rows = store.daily.export_history(fleet_id)
    try:
        write_history(rows, out)
    except (HistoryError, OSError) as error:
        raise fail(error) from None
    console.print(f"{len(rows)} rows of {rows['pack_id'].nunique()} packs written to {out}",
                  highlight=False)  # fmt: skip


@analytics_app.command("run")
def analytics_run(
    fleet: FleetOption,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Analyse the rows up to this day, YYYY-MM-DD (default: the last).")]
    = None,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON.")]
    = False,
) -> None:  # fmt: skip
    """Analyse the fleet's daily rows now and keep the result as its latest analysis."""
    from cellwarden.cloud.analytics.scheduled_analytics import (
        AnalyticsError,
        analyse_stored_fleet,
    )

    try:
        day = None if as_of is None else date.fromisoformat(as_of)
    except ValueError:
        raise fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None
    with _fleet_store(db, fleet) as (store, fleet_id):
        try:
            analysis = analyse_stored_fleet(store, fleet_id, day)
        except AnalyticsError as error:
            raise fail(error) from None
    if as_json:
        print(json.dumps(analysis, indent=2))
        return
    ranking, prognosis = analysis["ranking"], analysis["prognosis"]
    outliers = [row for row in ranking if row["outlier"]]
    console.print(
        f"fleet {fleet!r} as of {analysis['as_of']}: {len(ranking)} packs ranked "
        f"({len(outliers)} outliers), {len(prognosis)} developing faults, "
        f"{len(analysis['rotation'])} pairs to rotate ({analysis['duration_s']:.1f} s)",
        highlight=False,
    )
    for row in outliers:
        console.print(f"outlier {row['pack_id']}: {row['reason']}", highlight=False)
    for row in prognosis:
        console.print(f"{row['fault_kind']} {row['pack_id']} since {row['first_flag_date']}: "
                      f"{row['reason']}", highlight=False)  # fmt: skip
    for row in analysis["rotation"]:
        console.print(f"rotate: {row['reason']}", highlight=False)


@cloud_app.command("demo")
def demo(
    speed: Annotated[float, typer.Option(min=1, max=1000, help="× real time.")] = 30.0,
    duration: Annotated[float, typer.Option(min=60, help="Simulated seconds.")] = 3600.0,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="API port.")] = None,
    out: Annotated[Path, typer.Option(help="Working folder (recreated).")] = Path("out/fleet-demo"),
    keep_serving: Annotated[bool, typer.Option(help="Serve on after the fleet's run.")] = True,
) -> None:
    """A small mixed fleet with its edges, a local broker and the cloud (docs/cloud.md)."""
    from cellwarden.simulation.fleet_demo import run_fleet_demo

    result = run_fleet_demo(out, speed=speed, duration_s=duration, port=port,
                            keep_serving=keep_serving, announce=console.print)  # fmt: skip
    missing = {d: n - result.stored.get(d, 0) for d, n in result.produced.items()
               if result.stored.get(d, 0) < n}  # fmt: skip
    if missing:
        raise fail(f"summaries produced but not stored: {missing}")


@history_app.command("derive")
def history_derive(
    fleet: FleetOption,
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (UTC).")],
    last: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (UTC), included.")],
    db: DbOption = DEFAULT_DB,
    analyse: Annotated[bool, typer.Option(
        "--analyse", help="Then analyse the fleet as of --to, as `analytics run` does.")]
    = False,
) -> None:  # fmt: skip
    """Derive the fleet's daily rows from its stored summaries for past days (the nightly
    run derives only yesterday); a derived day replaces the stored row, days without
    summaries keep theirs."""
    import time
    from datetime import timedelta

    try:
        first_day, last_day = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise fail(f"--from {first!r} and --to {last!r} must be dates (YYYY-MM-DD)") from None
    if first_day > last_day:
        raise fail(f"--from {first} is after --to {last}")
    started_s = time.perf_counter()
    with _fleet_store(db, fleet) as (store, fleet_id):
        own = {pack.id for pack in store.daily.fleet_packs(fleet_id)}
        derived: dict[int, int] = {}  # pack -> rows
        for offset in range((last_day - first_day).days + 1):
            day = first_day + timedelta(days=offset)
            for pack_id in own.intersection(store.daily.packs_with_summaries(day)):
                if store.daily.derive_day(pack_id, day) is not None:
                    derived[pack_id] = derived.get(pack_id, 0) + 1
        span = store.daily.day_span(fleet_id)
    console.print(f"{sum(derived.values())} rows of {len(derived)} packs derived for fleet "
                  f"{fleet!r} from {first_day} to {last_day} in "
                  f"{time.perf_counter() - started_s:.1f} s", highlight=False)  # fmt: skip
    if analyse:
        if span is None:
            raise fail(f"fleet {fleet!r} has no daily rows to analyse")
        as_of = max(span[0], min(last_day, span[1]))
        analytics_run(fleet=fleet, as_of=as_of.isoformat(), db=db, as_json=False)
