"""Fleet analytics through the API and the command line: the latest analysis, runs by role,
organisations kept apart, daily rows as files and per pack, and `cellwarden cloud history`
and `cloud analytics`.

The store is a SQLite file seeded once per module (a simulated fleet of 12 packs over 400
days imported into organisation A's fleet and analysed once); each API test works on its
own copy.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.cli_cloud import cloud_app
from cellwarden.cloud.analytics.scheduled_analytics import analyse_stored_fleet
from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.daily_history import parse_import
from cellwarden.cloud.store.registry import Role
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.fleet_history import (
    NUMERIC_COLUMNS,
    parse_history,
    read_history,
    write_history,
)

with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 for its client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

runner = CliRunner()


@dataclass(frozen=True)
class Seeded:
    path: Path
    history: pd.DataFrame  # what was imported into fleet "scooters"
    fleets: dict[str, int]  # name -> id
    tokens: dict[str, str]  # user -> token


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("analytics-api") / "template.db"
    store = open_store(f"sqlite:///{path}")
    registry = store.registry
    a, b = registry.add_org("Alpha Energy"), registry.add_org("Beta Mobility")
    fleets = {name: registry.add_fleet(org, name)
              for org, name in ((a, "scooters"), (a, "vans"), (b, "beta-bikes"))}  # fmt: skip
    history = simulate_fleet(FleetSpec(packs=12, days=400, seed=0)).history
    store.daily.import_history(fleets["scooters"], parse_import(history), create_packs=True)
    analyse_stored_fleet(store, fleets["scooters"])
    # a van whose history has only the required columns: the others are empty
    van = history[history["pack_id"] == history["pack_id"].iloc[0]].head(30)
    required = van[["pack_id", "date", "soh_capacity_pct", "soh_resistance_pct", "efc_total",
                    "temp_mean_c", "temp_max_c", "soc_mean_pct", "dod_mean_pct",
                    "throughput_ah"]].assign(pack_id="van-1")  # fmt: skip
    store.daily.import_history(fleets["vans"], parse_import(required), create_packs=True)
    tokens = {f"a-{role.value}": registry.add_user(f"alpha-{role.value}", a, role)
              for role in Role}  # fmt: skip
    tokens["b-admin"] = registry.add_user("beta-admin", b, Role.ADMIN)
    store.close()
    return Seeded(path, history, fleets, tokens)


@dataclass
class World:
    seeded: Seeded
    store: CloudStore
    client: TestClient

    def call(self, who: str, method: str, path: str, **kwargs) -> object:
        headers = {"Authorization": f"Bearer {self.seeded.tokens[who]}"}
        return self.client.request(method, path, headers=headers, **kwargs)

    def fleet(self, name: str = "scooters") -> str:
        return f"/api/v1/fleets/{self.seeded.fleets[name]}"


@pytest.fixture
def world(seeded: Seeded, tmp_path: Path) -> Iterator[World]:
    path = tmp_path / "cloud.db"
    shutil.copyfile(seeded.path, path)
    store = open_store(f"sqlite:///{path}")
    try:
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            yield World(seeded, store, client)
    finally:
        store.close()


def strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


# --- the latest analysis ----------------------------------------------------------------------
def test_viewer_reads_the_latest_analysis(world: World) -> None:
    answer = world.call("a-viewer", "GET", f"{world.fleet()}/analytics")
    assert answer.status_code == 200, answer.text
    body = strict_json(answer.text)
    assert set(body) >= {"as_of", "computed_s", "ranking", "forecast", "prognosis", "rotation"}
    history = world.seeded.history
    assert body["as_of"] == history["date"].max().date().isoformat()
    packs = set(history["pack_id"])
    assert {row["pack_id"] for row in body["ranking"]} == packs
    assert [row["rank"] for row in body["ranking"]] == list(range(1, len(packs) + 1))
    assert {row["pack_id"] for row in body["forecast"]} == packs
    # every record names its pack's device id (the dashboard links to the pack's page)
    for name in ("ranking", "forecast", "prognosis"):
        assert all(row["device_id"] == row["pack_id"] for row in body[name]), name
    for row in body["forecast"]:
        assert row["soh_p10_pct"] <= row["soh_pct_at_horizon"] <= row["soh_p90_pct"]


def test_no_analysis_yet_is_404_with_the_reason(world: World) -> None:
    answer = world.call("a-viewer", "GET", f"{world.fleet('vans')}/analytics")
    assert answer.status_code == 404
    assert "has not been analysed yet" in answer.json()["detail"]


# --- runs by role -----------------------------------------------------------------------------
def test_viewer_cannot_run_the_analysis(world: World) -> None:
    before = world.store.db.query("SELECT * FROM fleet_analytics")
    answer = world.call("a-viewer", "POST", f"{world.fleet()}/analytics/run")
    assert answer.status_code == 403
    assert "operator role" in answer.json()["detail"]
    assert world.store.db.query("SELECT * FROM fleet_analytics") == before


@pytest.mark.parametrize("who", ["a-operator", "a-admin"])
def test_operator_and_admin_run_the_analysis(world: World, who: str) -> None:
    as_of = (world.seeded.history["date"].max() - pd.Timedelta(days=30)).date().isoformat()
    started_s = time.time()
    answer = world.call(who, "POST", f"{world.fleet()}/analytics/run", params={"as_of": as_of})
    assert answer.status_code == 200, answer.text
    body = strict_json(answer.text)
    assert body["as_of"] == as_of and started_s <= body["computed_s"] <= time.time()
    assert body["duration_s"] > 0 and body["horizon_days"] > 0
    # kept as the fleet's latest unless the one kept is of a later day
    latest = world.call("a-viewer", "GET", f"{world.fleet()}/analytics").json()
    assert latest == body or latest["as_of"] > body["as_of"]
    earlier = (pd.Timestamp(as_of) - pd.Timedelta(days=20)).date().isoformat()
    past = world.call(who, "POST", f"{world.fleet()}/analytics/run", params={"as_of": earlier})
    assert past.status_code == 200 and past.json()["as_of"] == earlier
    after = world.call("a-viewer", "GET", f"{world.fleet()}/analytics").json()
    assert after == latest  # a run for a past day does not replace a later analysis


def test_run_is_refused_with_the_reason(world: World) -> None:
    url = f"{world.fleet()}/analytics/run"
    late = world.call("a-operator", "POST", url, params={"as_of": "2099-01-01"})
    assert late.status_code == 422 and "outside the fleet's daily rows" in late.json()["detail"]
    bad = world.call("a-operator", "POST", url, params={"as_of": "01/02/2024"})
    assert bad.status_code == 422
    empty = world.call("b-admin", "POST", f"{world.fleet('beta-bikes')}/analytics/run")
    assert empty.status_code == 409 and "no daily rows yet" in empty.json()["detail"]


# --- organisations are kept apart ------------------------------------------------------------
def test_other_organisations_fleets_are_404(world: World) -> None:
    before = world.store.db.query("SELECT * FROM fleet_analytics")
    van = world.call("a-admin", "GET", "/api/v1/packs/van-1/daily")
    assert van.status_code == 200
    for method, suffix in [("GET", "analytics"), ("POST", "analytics/run"),
                           ("GET", "daily.csv"), ("GET", "daily.parquet")]:  # fmt: skip
        theirs = world.call("b-admin", method, f"{world.fleet()}/{suffix}")
        ghost = world.call("b-admin", method, f"/api/v1/fleets/987654/{suffix}")
        assert theirs.status_code == ghost.status_code == 404, suffix
        fleet_id = world.seeded.fleets["scooters"]
        assert theirs.json() == {"detail": f"no fleet {fleet_id}"}
        assert ghost.json() == {"detail": "no fleet 987654"}
    assert world.call("b-admin", "GET", "/api/v1/packs/van-1/daily").status_code == 404
    assert world.store.db.query("SELECT * FROM fleet_analytics") == before


# --- daily rows -------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_fleet_daily_rows_as_a_history_file(world: World, suffix: str, tmp_path: Path) -> None:
    answer = world.call("a-viewer", "GET", f"{world.fleet()}/daily.{suffix}")
    assert answer.status_code == 200
    disposition = f'attachment; filename="scooters-daily.{suffix}"'
    assert answer.headers["content-disposition"] == disposition
    path = tmp_path / f"got.{suffix}"
    path.write_bytes(answer.content)
    got = read_history(path).rows
    want = tmp_path / f"want.{suffix}"  # the imported history through the format's writer
    write_history(world.seeded.history, want)
    pd.testing.assert_frame_equal(got, read_history(want).rows)


def test_pack_daily_rows_with_missing_values_as_null(world: World) -> None:
    answer = world.call("a-viewer", "GET", "/api/v1/packs/van-1/daily")
    rows = strict_json(answer.text)["rows"]
    assert len(rows) == 30 and list(rows[0]) == ["date", *NUMERIC_COLUMNS]
    van = world.seeded.history
    van = van[van["pack_id"] == van["pack_id"].iloc[0]].head(30)
    assert [row["date"] for row in rows] == van["date"].dt.strftime("%Y-%m-%d").tolist()
    assert [row["soh_capacity_pct"] for row in rows] == van["soh_capacity_pct"].tolist()
    assert all(row["ambient_temp_c"] is None and row["cell_count"] is None for row in rows)


# --- the command line -------------------------------------------------------------------------
@pytest.fixture
def cli_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for args in (["orgs", "add", "Alpha Energy"], ["fleets", "add", "scooters", "--org",
                                                    "Alpha Energy"]):  # fmt: skip
        assert runner.invoke(cloud_app, [*args, "--db", url]).exit_code == 0
    return url


def cli(*args: object) -> tuple[int, str]:
    """Exit code and output, its words joined by single spaces (the console wraps lines)."""
    result = runner.invoke(cloud_app, [str(arg) for arg in args])
    return result.exit_code, " ".join(result.output.split())


def test_cli_import_export_and_run(seeded: Seeded, cli_db: str, tmp_path: Path) -> None:
    history = seeded.history
    source = tmp_path / "fleet.csv"
    write_history(history, source)
    lines = source.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[1], "someday", 1)  # data line 5
    source.write_text("\n".join(lines) + "\n")
    db = ("--db", cli_db)

    code, output = cli("history", "import", source, "--fleet", "scooters", *db)
    assert code == 1
    assert "0 rows written to fleet 'scooters', 0 packs created" in output
    assert "line 5: date is not YYYY-MM-DD" in output
    assert f"line 1: pack {history['pack_id'].iloc[0]!r} is not registered" in output
    assert "nothing written" in output

    code, output = cli("history", "import", source, "--fleet", "scooters", *db, "--create-packs")
    assert code == 0, output
    assert f"{len(history) - 1} rows written to fleet 'scooters', 12 packs created" in output
    assert output.count("line ") == 1 and "line 5: date is not YYYY-MM-DD" in output

    for suffix in ("csv", "parquet"):
        out = tmp_path / f"out.{suffix}"
        code, output = cli("history", "export", "--fleet", "scooters", "--out", out, *db)
        assert code == 0, output
        assert f"{len(history) - 1} rows of 12 packs written" in output
        pd.testing.assert_frame_equal(read_history(out).rows, read_history(source).rows)

    as_of = history["date"].max().date().isoformat()
    result = runner.invoke(cloud_app, ["analytics", "run", "--fleet", "scooters", *db, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["as_of"] == as_of and len(body["ranking"]) == 12
    code, output = cli("analytics", "run", "--fleet", "scooters", *db)
    assert f"fleet 'scooters' as of {as_of}: 12 packs ranked" in output
    for row in body["prognosis"]:
        assert f"{row['fault_kind']} {row['pack_id']} since {row['first_flag_date']}" in output
        assert row["reason"] in output


def test_cli_refusals(cli_db: str, tmp_path: Path) -> None:
    db = ("--db", cli_db)
    unreadable = tmp_path / "broken.parquet"
    unreadable.write_bytes(b"not parquet")
    code, output = cli("history", "import", unreadable, "--fleet", "scooters", *db)
    assert code == 1 and "cannot be read as history" in output
    code, output = cli("history", "import", tmp_path / "none.csv", "--fleet", "scooters", *db)
    assert code == 1 and "no such history file" in output
    code, output = cli("analytics", "run", "--fleet", "nope", *db)
    assert code == 2 and "no fleet 'nope'" in output
    code, output = cli("analytics", "run", "--fleet", "scooters", *db)
    assert code == 2 and "no daily rows yet" in output
    code, output = cli("analytics", "run", "--fleet", "scooters", "--as-of", "May 1", *db)
    assert code == 2 and "is not a date" in output


def test_history_files_parse_back_without_problems(seeded: Seeded) -> None:
    """The control of the comparisons above: the simulated history is clean."""
    assert parse_history(seeded.history).problems == []
