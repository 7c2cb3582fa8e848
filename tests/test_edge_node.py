"""The edge beside a running BMS: commands through a real broker, a broker that never answers,
a disk that fills up mid-run and a corrupt queue at start; the BMS runs on through all of it."""

import itertools
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from tests.mqtt_support import Collector

from cellwarden.edge.commands import signature
from cellwarden.model.edge import Geofence
from cellwarden.simulation.catalogue import resolve_scenario
from cellwarden.simulation.controller import PeriodicTask
from cellwarden.simulation.edge_run import EdgeOptions, build_edge, run_edge
from cellwarden.simulation.local_broker import LocalBroker
from cellwarden.simulation.runner import Simulation

SCENARIO = Path(__file__).parent / "data" / "edge-telecom-16s.toml"


def scenario():
    return resolve_scenario(str(SCENARIO))


def test_commands_through_the_broker_are_answered(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        cloud = Collector(broker.port)
        simulation = Simulation(scenario(), duration_s=2400)
        options = EdgeOptions(device_id="dev-1", fleet="f", broker=broker.url(),
                              queue_dir=tmp_path / "queue", command_key="k3y")  # fmt: skip
        node = build_edge(simulation, options)
        runner = threading.Thread(target=simulation.run, kwargs={"speed": 200.0})
        runner.start()
        assert cloud.wait_for(lambda: any(t.endswith("/status") and b"online" in p
                                          for t, p in cloud.raw), 20)  # fmt: skip
        signed = signature("k3y", "dev-1", "c5", "clear_faults", {})
        commands = [
            b'{"id": "c1", "cmd": "set_rates", "args": {"summary_s": 60, "batch_s": 0}}',
            b'{"id": "c2", "cmd": "snapshot"}',
            b'{"id": "c3", "cmd": "read_dtc"}',
            b'{"id": "c4", "cmd": "clear_faults"}',
            json.dumps({"id": "c5", "cmd": "clear_faults", "auth": signed}).encode(),
            b"\x00\x01 not json",
            b'{"id": "c7", "cmd": "set_rates", "args": {"summary_s": -5}}',
        ]
        for payload in commands:
            cloud.client.publish("cw/f/dev-1/cmd", payload, qos=1)
        assert cloud.wait_for(lambda: cloud.count("reply") >= len(commands), 30)
        replies = {r["id"]: r for r in cloud.records["reply"].values()}
        runner.join(60)
        node.finish(5)
        cloud.close()
    assert replies["c1"]["ok"] and replies["c1"]["result"]["summary_s"] == 60
    assert replies["c2"]["ok"] and replies["c2"]["result"]["records"] == ["summary", "cells"]
    assert replies["c3"]["ok"] and replies["c3"]["result"]["strings"][0]["string"] == "module"
    assert not replies["c4"]["ok"] and "'auth' is missing" in replies["c4"]["error"]
    assert replies["c5"]["ok"] and isinstance(replies["c5"]["result"]["cleared"], list)
    assert not replies[None]["ok"] and "not JSON" in replies[None]["error"]
    assert not replies["c7"]["ok"] and "outside" in replies["c7"]["error"]
    changed_at = replies["c1"]["time_s"]
    snapshot_at = replies["c2"]["result"]["time_s"]  # the snapshot's own summary
    times = sorted(t["time_s"] for t in cloud.records["summary"].values())
    times = [t for t in times if t != snapshot_at]
    after = [t for t in times if t > changed_at + 1]
    before = [t for t in times if t < changed_at]
    assert after and all(b - a == pytest.approx(60.0) for a, b in itertools.pairwise(after))
    assert all(b - a == pytest.approx(10.0) for a, b in itertools.pairwise(before))


def black_hole() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, server.getsockname()[1]


@pytest.mark.parametrize("broker", ["silent", "refusing"])
def test_the_bms_never_waits_on_a_broker_that_does_not_answer(tmp_path, broker):
    server, port = black_hole()
    if broker == "refusing":
        server.close()  # nobody listens: connections are refused
    base = EdgeOptions(device_id="d", queue_dir=tmp_path / "alone", duration_s=7200, drain_wall_s=1)
    alone = run_edge(scenario(), base)
    options = EdgeOptions(device_id="d", queue_dir=tmp_path / "q", duration_s=7200,
                          broker=f"mqtt://127.0.0.1:{port}", drain_wall_s=1)  # fmt: skip
    stuck = run_edge(scenario(), options)
    server.close()
    assert stuck["produced"] == alone["produced"]
    assert stuck["acknowledged"] == {}
    assert stuck["queued"] == stuck["produced"]  # everything kept for later


def test_a_full_disk_mid_run_loses_no_event_and_stops_nothing(tmp_path):
    simulation = Simulation(scenario(), duration_s=14400)
    node = build_edge(simulation, EdgeOptions(device_id="d", queue_dir=tmp_path / "q"))
    db = node.queue.db

    def disk(now_s: float) -> None:
        if now_s == 3600:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")  # full from here on
        elif now_s == 10800:
            db.execute("PRAGMA max_page_count = 1073741823")

    simulation.add_task(PeriodicTask("disk", 3600, disk))
    node.source.strings[0].log.info(7000.0, "TEST", "an event while the disk is full")
    result = simulation.run()
    node.finish(0)
    summary = node.summary()
    assert result.plant.time_s == 14400  # the BMS ran to the end
    assert any("cannot store" in error for error in summary["errors"])
    assert summary["not_stored"].get("summary", 0) > 0
    assert "event" not in summary["not_stored"]
    from cellwarden.edge.store_forward import StoreAndForward
    from cellwarden.telemetry.schema import Kind

    queue = StoreAndForward(tmp_path / "q")
    codes = [r.record["code"] for r in queue.take(Kind.EVENT, 1000)]
    assert "TEST" in codes  # held in memory while the disk was full, stored afterwards


def test_a_corrupt_queue_at_start_is_named_and_the_run_goes_on(tmp_path):
    queue = tmp_path / "q"
    queue.mkdir()
    (queue / "queue.sqlite").write_bytes(b"\x00garbage" * 512)
    summary = run_edge(scenario(), EdgeOptions(device_id="d", queue_dir=queue, duration_s=600))
    assert any("unreadable" in error for error in summary["errors"])
    assert summary["produced"]["summary"] == 61
    assert (queue / "queue.sqlite.corrupt-1").exists()


def test_the_edge_reconnects_after_the_broker_goes_away(tmp_path):
    with LocalBroker(tmp_path / "broker") as broker:
        cloud = Collector(broker.port)
        simulation = Simulation(scenario(), duration_s=2400)
        options = EdgeOptions(device_id="dev-1", fleet="f", broker=broker.url(),
                              queue_dir=tmp_path / "queue")  # fmt: skip
        node = build_edge(simulation, options)
        node.rates_s["batch_s"] = 0.0  # send every record at once: some are in flight
        runner = threading.Thread(target=simulation.run, kwargs={"speed": 100.0})
        runner.start()
        assert cloud.wait_for(lambda: cloud.count("summary") > 20, 20)
        broker.stop()
        time.sleep(3.0)  # 300 simulated seconds without a broker
        broker.start()
        runner.join(120)
        node.finish(20)
        summary = node.summary()
        assert cloud.wait_for(lambda: cloud.count("summary") >= 241, 20)
        cloud.close()
    assert node.uplink.connects >= 2
    assert summary["queued"] == {} and summary["dropped"] == {}
    times = sorted(r["time_s"] for r in cloud.records["summary"].values())
    assert times == pytest.approx([10.0 * i for i in range(241)])


def test_geofence_crossings_become_events(tmp_path):
    base = scenario()
    gps = base.edge.gps.model_copy(update={
        "mode": "route", "max_speed_kmh": 25.0,
        "geofences": [Geofence(name="depot", latitude_deg=base.edge.gps.latitude_deg + 0.0135,
                               longitude_deg=base.edge.gps.longitude_deg, radius_m=300.0)],
    })  # fmt: skip
    moving = base.model_copy(update={"edge": base.edge.model_copy(update={"gps": gps})})
    simulation = Simulation(moving, duration_s=21600)
    node = build_edge(simulation, EdgeOptions(device_id="d", queue_dir=tmp_path / "q"))
    simulation.run()
    node.finish(0)
    from cellwarden.edge.store_forward import StoreAndForward
    from cellwarden.telemetry.schema import Kind

    events = StoreAndForward(tmp_path / "q").take(Kind.EVENT, 1000)
    crossings = [r.record["code"] for r in events if r.record["code"].startswith("GEOFENCE")]
    # the route starts inside the depot; the vehicle laps while the grid outage discharges it
    assert crossings[0] == "GEOFENCE_ENTER" and len(crossings) >= 5
    assert all(a != b for a, b in itertools.pairwise(crossings))  # enter, exit, enter, ...


def test_the_data_logger_records_a_run_and_exports_it(tmp_path):
    from typer.testing import CliRunner

    from cellwarden.cli import app

    runner = CliRunner()
    logs = tmp_path / "sd"
    ran = runner.invoke(app, ["edge", "run", str(SCENARIO), "--duration", "1200", "--queue",
                              str(tmp_path / "q"), "--log-dir", str(logs), "--json"])  # fmt: skip
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.output)
    assert summary["logger_dropped"] == 0
    out = tmp_path / "log.parquet"
    exported = runner.invoke(app, ["logger", "export", str(logs), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    import pandas as pd

    frame = pd.read_parquet(out)
    pack = frame[frame["kind"] == "pack"]
    assert len(pack) == 1201  # 1 Hz pack data, 0..1200 s
    assert (frame["kind"] == "cells").sum() == 21  # a snapshot a minute
    assert pack["soc_pct"].between(0, 100).all()


def test_interleaved_simulations_match_their_own_runs():
    from cellwarden.simulation.paced import run_together

    alone = Simulation(scenario(), duration_s=3600).run().recorder.pack_frame()
    together = [Simulation(scenario(), duration_s=3600) for _ in range(3)]
    walls_s = run_together(together)
    assert all(wall_s > 0 for wall_s in walls_s)
    for simulation, wall_s in zip(together, walls_s, strict=True):
        frame = simulation.result(wall_s).recorder.pack_frame()
        assert frame.equals(alone)  # bit-identical: the interleaving changes nothing


def test_every_record_carries_the_clock_epoch_the_edge_events_too(tmp_path):
    from cellwarden.edge.store_forward import StoreAndForward
    from cellwarden.telemetry.schema import Kind

    queue = tmp_path / "q"
    queue.mkdir()
    (queue / "queue.sqlite").write_bytes(b"\x00garbage" * 512)  # makes an edge event at start
    epoch_s = 1_790_000_000.0
    run_edge(scenario(), EdgeOptions(device_id="d", queue_dir=queue, duration_s=600,
                                     clock_epoch_s=epoch_s))  # fmt: skip
    stored = StoreAndForward(queue, 1 << 24)
    records = {kind: stored.take(kind, 10_000) for kind in (Kind.SUMMARY, Kind.EVENT)}
    stored.close()
    for kind, taken in records.items():
        times = [r.record["time_s"] for r in taken]
        assert times and all(epoch_s <= t <= epoch_s + 600 for t in times), (kind, min(times))
    assert "QUEUE_RECOVERED" in [r.record["code"] for r in records[Kind.EVENT]]
