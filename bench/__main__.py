"""Run every benchmark: ``python -m bench`` (or ``make bench``). Results go to bench/results/."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import plant_throughput

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    console = Console()
    rows = plant_throughput.measure()
    table = Table(title="plant throughput (ratio: plant cell-steps/s over bare NumPy's)")
    for column in (
        "system",
        "cells",
        "steps/s",
        "M cell-steps/s",
        "NumPy M cell-steps/s",
        "ratio",
        "state B/cell",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["system"]),
            f"{row['cells']}",
            f"{row['plant_steps_per_s']:,.0f}",
            f"{row['plant_cell_steps_per_s'] / 1e6:.1f}",
            f"{row['baseline_cell_steps_per_s'] / 1e6:.1f}",
            f"{row['ratio_to_numpy']:.2f}",
            f"{row['state_bytes_per_cell']:.0f}",
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    report = {"machine": platform.platform(), "plant_throughput": rows}
    (RESULTS / "plant_throughput.json").write_text(json.dumps(report, indent=2))
    console.print(f"results written to {RESULTS / 'plant_throughput.json'}")


if __name__ == "__main__":
    main()
