"""Writes a run's results: time series (Parquet), events (JSON Lines), summary and a plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cellwarden.simulation.runner import RunResult


def write_results(result: RunResult, folder: Path) -> dict[str, Path]:
    """Write every output file of a run into ``folder``; returns their paths by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "timeseries": folder / "timeseries.parquet",
        "events": folder / "events.jsonl",
        "summary": folder / "summary.json",
        "plot": folder / "overview.png",
    }
    pack = result.recorder.pack_frame()
    pack.to_parquet(paths["timeseries"], index=False)
    cells = result.recorder.cell_frame()
    if cells is not None:
        paths["cells"] = folder / "cells.parquet"
        cells.to_parquet(paths["cells"], index=False)
    with paths["events"].open("w") as handle:
        for event in result.events.events:
            handle.write(json.dumps(event.as_dict()) + "\n")
    paths["summary"].write_text(json.dumps(result.summary, indent=2))
    plot_overview(pack, result.scenario.name, paths["plot"])
    return paths


def plot_overview(pack, title: str, path: Path) -> None:
    """Four stacked panels: cell voltage, current, temperature, SoC over time."""
    hours = pack["time_s"] / 3600.0
    figure, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    panels = [
        ("cell voltage [V]", ["cell_voltage_min_v", "cell_voltage_mean_v", "cell_voltage_max_v"]),
        ("current [A]", ["pack_current_a"]),
        ("cell temperature [°C]", ["cell_temp_min_c", "cell_temp_mean_c", "cell_temp_max_c"]),
        ("state of charge [%]", ["soc_min_pct", "soc_mean_pct", "soc_max_pct"]),
    ]
    if "bms_soc_pct" in pack:
        panels[-1][1].append("bms_soc_pct")
    for axis, (label, columns) in zip(axes, panels, strict=True):
        for column in columns:
            name = "BMS estimate" if column.startswith("bms_") else column.split("_")[-2]
            style = "--" if column.startswith("bms_") else "-"
            axis.plot(hours, pack[column], style, label=name, linewidth=0.8)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if len(columns) > 1:
            axis.legend(loc="upper right", fontsize="small")
    axes[1].set_title("positive current charges the battery", fontsize="small")
    axes[-1].set_xlabel("time [h]")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
