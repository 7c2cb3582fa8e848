"""Run every benchmark: ``python -m bench`` (or ``make bench``). Results go to bench/results/."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import (
    bms_cycle,
    campaign_speed,
    can_bus_load,
    closed_loop_can_speed,
    cloud_api,
    cloud_ingest,
    edge_bytes,
    edge_fleet,
    fleet_analytics,
    health_accuracy,
    multi_master_speed,
    plant_throughput,
    soc_accuracy,
)

RESULTS = Path(__file__).parent / "results"
BENCHES = {
    "plant_throughput": plant_throughput.measure,
    "bms_cycle": bms_cycle.measure,
    "soc_accuracy": soc_accuracy.measure,
    "health_accuracy": health_accuracy.measure,
    "can_bus_load": can_bus_load.measure,
    "closed_loop_can_speed": closed_loop_can_speed.measure,
    "multi_master_speed": multi_master_speed.measure,
    "campaign_speed": campaign_speed.measure,
    "edge_bytes": edge_bytes.measure,
    "edge_fleet": edge_fleet.measure,
    "cloud_ingest": cloud_ingest.measure,
    "cloud_api": cloud_api.measure,
    "fleet_analytics": fleet_analytics.measure,
}


def _table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,.3g}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def main(names: list[str]) -> None:
    console = Console()
    RESULTS.mkdir(exist_ok=True)
    for name, measure in BENCHES.items():
        if names and name not in names:
            continue
        result = measure()  # one table's rows, or several tables by title
        tables = result if isinstance(result, dict) else {name: result}
        for title, rows in tables.items():
            console.print(_table(title, rows))
        report = {"machine": platform.platform(), "rows": result}
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2))
    console.print(f"results written to {RESULTS}/")


if __name__ == "__main__":
    main(sys.argv[1:])
