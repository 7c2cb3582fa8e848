"""The fleet simulator feeds the cloud over MQTT: a simulated fleet published by
``cellwarden fleet feed`` to a real Mosquitto (each pack as its own device under the ACL),
stored by an ingest worker, derived by ``cellwarden cloud history derive``; the derived daily
rows are checked against the simulated history."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.mqtt_support import wait_for
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.cloud.ingest.mqtt_source import MqttSource
from cellwarden.cloud.ingest.worker import IngestWorker
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.simulation.fleet.feed import (
    DEFAULT_PERIOD_S,
    FeedError,
    feed_history,
    read_passwords,
    records_per_day,
)
from cellwarden.simulation.fleet.output import write_run
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.simulation.local_broker import DEVICE_ACL, LocalBroker
from cellwarden.telemetry.broker_url import BrokerUrl

FLEET = "sim-fleet"
MIX = "e-scooter:1,cargo-ev:1,forklift:1,telecom:1"  # light, heavy, daily cycling, floating
runner = CliRunner()


@pytest.fixture(scope="module")
def run():
    return simulate_fleet(FleetSpec(packs=4, days=8, seed=11, mix=MIX))


@pytest.fixture
def store(tmp_path: Path, run) -> Iterator[CloudStore]:
    store = open_store(f"sqlite:///{tmp_path / 'cloud.db'}")
    store.registry.add_fleet(store.registry.add_org("acme"), FLEET)
    for pack in run.history.groupby("pack_id").first().reset_index().itertuples():
        store.registry.add_pack(pack.pack_id, FLEET, capacity_ah=pack.capacity_nominal_ah,
                                cell_count=int(pack.cell_count))  # fmt: skip
    yield store
    store.close()


@contextlib.contextmanager
def ingesting(store: CloudStore, broker_url: str) -> Iterator[None]:
    """An ingest worker (the cloud's, in a thread) on the broker's shared subscription."""
    source = MqttSource(BrokerUrl.parse(broker_url), "ingest-feed-test")
    worker = IngestWorker(store, "ingest-feed-test")
    stop = threading.Event()
    source.start()
    assert source.subscribed.wait(10), source.last_error
    thread = threading.Thread(target=worker.run, args=(source, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        source.stop()


def stored_summaries(store: CloudStore) -> int:
    return store.db.query("SELECT COUNT(*) FROM summary")[0][0]


def test_a_fed_fleet_is_derived_back_into_its_history(tmp_path, run, store):
    history = run.history
    write_run(run, tmp_path / "run")
    packs = sorted(history["pack_id"].unique())
    passwords = {pack: f"pw-{index}" for index, pack in enumerate(packs)}
    password_file = tmp_path / "passwords"
    password_file.write_text("# device:password\n" + "".join(f"{d}:{p}\n" for d, p in
                                                              passwords.items()))  # fmt: skip
    assert read_passwords(password_file) == passwords
    expected = len(history) * records_per_day(DEFAULT_PERIOD_S)
    users = {"cloud": "cloud-pw", **passwords}
    with LocalBroker(tmp_path / "broker", users, DEVICE_ACL) as broker:
        with ingesting(store, broker.url("cloud", "cloud-pw")):
            fed = runner.invoke(app, [
                "fleet", "feed", "--run", str(tmp_path / "run"), "--broker", broker.url(),
                "--fleet", FLEET, "--password-file", str(password_file), "--json",
            ])  # fmt: skip
            assert fed.exit_code == 0, fed.output
            report = json.loads(fed.output)
            assert (report["packs"], report["pack_days"]) == (len(packs), len(history))
            assert report["records"] == expected  # every record acknowledged by the broker
            assert wait_for(lambda: stored_summaries(store) >= expected, 20)
        assert stored_summaries(store) == expected  # nothing lost, nothing twice
        assert store.ingest_log.quarantined() == []

    first, last = history["date"].min().date(), history["date"].max().date()
    derived = runner.invoke(app, [
        "cloud", "history", "derive", "--fleet", FLEET, "--from", first.isoformat(),
        "--to", last.isoformat(), "--db", f"sqlite:///{tmp_path / 'cloud.db'}",
    ])  # fmt: skip
    assert derived.exit_code == 0, derived.output
    assert f"{len(history)} rows of {len(packs)} packs derived" in derived.output

    fleet_id = store.registry.fleet(FLEET)[0]
    cloud = store.daily.export_history(fleet_id)
    both = history.merge(cloud, on=["pack_id", "date"], suffixes=("", "_cloud"),
                         validate="one_to_one")  # fmt: skip
    assert len(both) == len(history) == len(cloud)

    def error(name: str) -> np.ndarray:
        return np.abs(both[f"{name}_cloud"] - both[name]).to_numpy()

    throughput = both["throughput_ah"].to_numpy()
    assert np.all(error("throughput_ah") <= 0.02 * throughput + 1e-3)
    assert error("soc_mean_pct").max() <= 2.0
    assert error("dod_mean_pct").max() <= 3.0
    assert error("temp_max_c").max() <= 0.5
    known = both["soh_capacity_pct"].notna()  # a day without the BMS's estimate stays without
    assert (both["soh_capacity_pct_cloud"].notna() == known).all()
    assert error("soh_capacity_pct")[known].max() <= 0.05
    # the cloud counts cycles itself: throughput / (2 x registered capacity), summed
    capacity = both["capacity_nominal_ah"]
    counted = (both["throughput_ah"] / (2 * capacity)).groupby(both["pack_id"]).cumsum()
    assert np.allclose(both["efc_total_cloud"], counted, rtol=0.02, atol=1e-3)
    # ... which is the simulator's own count (fed from each pack's first day in service)
    assert np.allclose(both["efc_total_cloud"], both["efc_total"], rtol=0.02, atol=1e-3)


def test_a_pack_the_broker_does_not_know_fails_the_feed_naming_it(tmp_path, run):
    pack = run.history["pack_id"].iloc[0]
    rows = run.history[run.history["pack_id"] == pack]
    with (
        LocalBroker(tmp_path / "broker", {"cloud": "cloud-pw"}, DEVICE_ACL) as broker,
        pytest.raises(FeedError, match=f"{pack}: .*refused the connection: Not authorized"),
    ):
        feed_history(rows, BrokerUrl.parse(broker.url(password="guess")), FLEET)


def test_the_synthetic_day_keeps_the_row_exactly_where_the_fields_allow(run):
    from cellwarden.cloud.store.daily_history import DAY_SOURCE_COLUMNS, day_figures
    from cellwarden.simulation.fleet.feed import day_batch

    for row in run.history.to_dict("records"):
        batch = day_batch(row)
        records = pd.DataFrame([record for _, record in batch])
        assert [seq for seq, _ in batch] == records["time_s"].round().astype(int).tolist()
        assert records["time_s"].iloc[0] == pd.Timestamp(row["date"], tz="UTC").timestamp()
        figures = day_figures(records[["time_s", *DAY_SOURCE_COLUMNS]].to_numpy(float),
                              row["capacity_nominal_ah"], 0.0)  # fmt: skip
        assert figures["throughput_ah"] == pytest.approx(row["throughput_ah"], abs=1e-3)
        assert figures["temp_max_c"] == pytest.approx(row["temp_max_c"], abs=1e-9)
        if row["temp_max_c"] >= row["temp_mean_c"]:
            assert figures["temp_mean_c"] == pytest.approx(row["temp_mean_c"], abs=1e-6)
        assert figures["soc_mean_pct"] == pytest.approx(row["soc_mean_pct"], abs=0.01)
        assert figures["dod_mean_pct"] == pytest.approx(row["dod_mean_pct"], abs=1e-6)
