"""The fleet demo end to end: simulated packs → edges → Mosquitto → ingest → store → API."""

from __future__ import annotations

import httpx

from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.simulation.fleet_demo import DEVICES, run_fleet_demo
from cellwarden.simulation.local_broker import free_port


def test_every_summary_an_edge_produced_is_stored_once_and_served(tmp_path):
    port = free_port()
    tokens: dict[str, str] = {}
    overview: list[dict] = []

    def announce(line: str) -> None:
        words = line.split()
        if len(words) == 2 and words[0] in ("admin", "operator", "viewer"):
            tokens[words[0]] = words[1]
        if line.startswith("fleet done"):  # the cloud still serves: ask it what it holds
            response = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/orgs/1/overview", timeout=30,
                headers={"Authorization": f"Bearer {tokens['viewer']}"},
            )  # fmt: skip
            overview.append(response.json())

    result = run_fleet_demo(tmp_path, speed=150.0, duration_s=600.0, port=port,
                            keep_serving=False, announce=announce)  # fmt: skip
    assert set(result.produced) == {device for device, *_ in DEVICES}
    assert all(count >= 50 for count in result.produced.values())  # 600 s at one per 10 s
    assert result.stored == result.produced  # nothing lost
    served = {item["device_id"]: item for item in overview[0]["items"]}
    assert set(served) == set(result.produced)
    assert all(item["soc_pct"] is not None and item["latitude_deg"] is not None
               for item in served.values())  # fmt: skip
    store = open_store(f"sqlite:///{tmp_path / 'cloud.db'}", upgrade=False)
    duplicates = store.db.query(
        "SELECT COUNT(*) - COUNT(DISTINCT pack_id || '/' || seq) FROM summary")[0][0]  # fmt: skip
    quarantined = store.ingest_log.quarantined()
    store.close()
    assert duplicates == 0
    assert quarantined == []
