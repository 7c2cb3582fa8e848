"""Everything the fleet analytics say about a fleet as of one day, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from cellwarden.cloud.analytics.degradation_ranking import degradation, rank, rotation_advice
from cellwarden.cloud.analytics.history_matrix import HistoryMatrix, missing_values_expected
from cellwarden.cloud.analytics.prognosis import prognose
from cellwarden.cloud.analytics.soh_forecast import ForecastSettings, forecast
from cellwarden.telemetry.fleet_history import FleetHistory


@dataclass
class FleetAnalysis:
    as_of: date
    ranking: pd.DataFrame  # degradation_ranking.rank columns
    forecast: pd.DataFrame  # soh_forecast.forecast columns
    prognosis: pd.DataFrame  # prognosis.FLAG_COLUMNS
    rotation: pd.DataFrame  # degradation_ranking.rotation_advice columns

    def to_json(self) -> dict:
        """Plain JSON: lists of records with NaN as null."""
        return {
            "as_of": self.as_of.isoformat(),
            "ranking": records(self.ranking),
            "forecast": records(self.forecast),
            "prognosis": records(self.prognosis),
            "rotation": records(self.rotation),
        }


def analyse_fleet(
    history: FleetHistory, as_of: date | None = None, settings: ForecastSettings | None = None
) -> FleetAnalysis:
    """Ranking, forecast, prognosis and rotation from the rows up to ``as_of`` (default: the
    history's last day)."""
    if as_of is None:
        as_of = history.rows["date"].max().date()
    known = history.up_to(pd.Timestamp(as_of))
    with missing_values_expected():
        matrix = HistoryMatrix.from_history(known)
        health = degradation(matrix)
        return FleetAnalysis(
            as_of=as_of,
            ranking=rank(health),
            forecast=forecast(known, as_of, settings or ForecastSettings()),
            prognosis=prognose(matrix),
            rotation=rotation_advice(health),
        )


def records(frame: pd.DataFrame) -> list[dict]:
    clean = frame.astype(object).where(frame.notna(), None)
    records = clean.to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.generic):
                record[key] = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                record[key] = None
    return records
