"""A simulated fleet on disk: the history the cloud would hold, and the truth beside it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from cellwarden.simulation.fleet.simulator import FleetRun
from cellwarden.telemetry.fleet_history import write_history

HISTORY_NAMES = {"csv": "history.csv", "parquet": "history.parquet"}


def write_run(run: FleetRun, out_dir: str | Path, history_format: str = "parquet") -> Path:
    """Write ``history.<format>``, ``truth/packs.csv``, ``truth/daily.parquet`` and
    ``fleet.json`` (the spec) into ``out_dir``; the history file's path."""
    out = Path(out_dir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    history_path = out / HISTORY_NAMES[history_format]
    write_history(run.history, history_path)
    run.truth_packs.to_csv(out / "truth" / "packs.csv", index=False)
    run.truth_daily.to_parquet(out / "truth" / "daily.parquet", index=False)
    spec = asdict(run.spec) | {"start": run.spec.start.isoformat()}
    (out / "fleet.json").write_text(json.dumps(spec, indent=2) + "\n")
    return history_path
