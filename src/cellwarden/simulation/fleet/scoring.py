"""Fleet analytics scored against a simulated fleet's truth (the forecast and the prognosis
never see the truth; only this module reads it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np
import pandas as pd

LEAD_DAYS = 30  # a fault must be flagged this long before its trip
EOL_WITHIN_DAYS = 730  # EoL dates are scored for packs reaching EoL within this


@dataclass
class ForecastScore:
    packs: int
    mae_pct: float
    mean_true_fade_pct: float
    mae_over_fade: float
    band_coverage: float
    eol_packs: int
    eol_error_over_remaining_mean: float
    eol_error_over_remaining_median: float
    eol_error_over_remaining_max: float
    eol_band_coverage: float

    def as_dict(self) -> dict:
        return asdict(self)


def score_forecast(
    forecast: pd.DataFrame, truth_daily: pd.DataFrame, as_of: date, horizon_days: int,
    eol_soh_pct: float = 80.0,
) -> ForecastScore:  # fmt: skip
    """MAE at the horizon against the true SoH, against the true fade over the horizon; share
    of packs whose truth lies in p10..p90; EoL date error over the remaining life for packs
    truly reaching EoL within ``EOL_WITHIN_DAYS`` after ``as_of``."""
    start = pd.Timestamp(as_of)
    end = start + pd.Timedelta(days=horizon_days)
    if end > truth_daily["date"].max():
        raise ValueError(
            f"the truth ends on {truth_daily['date'].max().date()}, before the horizon's end "
            f"{end.date()}: choose an earlier --as-of"
        )
    truth = truth_daily.set_index(["pack_id", "date"])["true_soh_capacity_pct"]
    predicted = forecast.set_index("pack_id")
    at_start = truth.xs(start, level="date").reindex(predicted.index)
    at_end = truth.xs(end, level="date").reindex(predicted.index)
    scored = at_start.notna() & at_end.notna()
    error = (predicted["soh_pct_at_horizon"] - at_end)[scored].abs()
    fade = (at_start - at_end)[scored]
    inside = (at_end >= predicted["soh_p10_pct"]) & (at_end <= predicted["soh_p90_pct"])

    crossing = truth_daily[truth_daily["true_soh_capacity_pct"] <= eol_soh_pct]
    true_eol = crossing.groupby("pack_id")["date"].min()
    relative, banded = [], []
    for pack_id, row in predicted.iterrows():
        when = true_eol.get(pack_id)
        if when is None or not start < when <= start + pd.Timedelta(days=EOL_WITHIN_DAYS):
            continue
        remaining = (when - start).days
        limit = start + pd.Timedelta(days=3653)
        guess = pd.Timestamp(row["eol_date"]) if row["eol_date"] else limit
        relative.append(abs((guess - when).days) / remaining)
        low = pd.Timestamp(row["eol_p10_date"]) if row["eol_p10_date"] else limit
        high = pd.Timestamp(row["eol_p90_date"]) if row["eol_p90_date"] else limit
        banded.append(low <= when <= high)
    relative_array = np.array(relative)
    nan = float("nan")
    return ForecastScore(
        packs=int(scored.sum()),
        mae_pct=float(error.mean()),
        mean_true_fade_pct=float(fade.mean()),
        mae_over_fade=float(error.mean() / fade.mean()),
        band_coverage=float(inside[scored].mean()),
        eol_packs=len(relative),
        eol_error_over_remaining_mean=float(relative_array.mean()) if relative else nan,
        eol_error_over_remaining_median=float(np.median(relative_array)) if relative else nan,
        eol_error_over_remaining_max=float(relative_array.max()) if relative else nan,
        eol_band_coverage=float(np.mean(banded)) if banded else nan,
    )


@dataclass
class PrognosisScore:
    tripped_faults: int
    caught: int  # flagged with the right kind, after onset and LEAD_DAYS or more before trip
    recall: float
    flags: int
    true_flags: int  # right kind, on or after the onset (also for faults not yet tripped)
    precision: float
    lead_days: list[int] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    false_flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def score_prognosis(flags: pd.DataFrame, truth_packs: pd.DataFrame) -> PrognosisScore:
    """Recall over the injected faults that tripped; precision over every flag raised."""
    truth = truth_packs.astype(object).fillna("").set_index("pack_id")
    true_flags, false_flags = 0, []
    for _, flag in flags.iterrows():
        pack = truth.loc[flag["pack_id"]]
        if pack["fault_kind"] == flag["fault_kind"] and pd.Timestamp(
            flag["first_flag_date"]
        ) >= pd.Timestamp(pack["fault_onset_date"]):
            true_flags += 1
        else:
            false_flags.append(
                f"{flag['pack_id']} {flag['fault_kind']} on {flag['first_flag_date']} "
                f"(truth: {pack['fault_kind'] or 'healthy'})"
            )
    first = {(row.pack_id, row.fault_kind): row.first_flag_date for row in flags.itertuples()}
    tripped = truth[(truth["fault_kind"] != "") & (truth["fault_trip_date"] != "")]
    leads, missed = [], []
    for pack_id, pack in tripped.iterrows():
        flagged = first.get((pack_id, pack["fault_kind"]))
        trip = pd.Timestamp(pack["fault_trip_date"])
        lead = (trip - pd.Timestamp(flagged)).days if flagged else None
        if (
            lead is not None
            and lead >= LEAD_DAYS
            and pd.Timestamp(flagged) >= pd.Timestamp(pack["fault_onset_date"])
        ):
            leads.append(lead)
        else:
            missed.append(f"{pack_id} {pack['fault_kind']} (lead {lead} days)")
    return PrognosisScore(
        tripped_faults=len(tripped),
        caught=len(leads),
        recall=len(leads) / max(len(tripped), 1),
        flags=len(flags),
        true_flags=true_flags,
        precision=true_flags / max(len(flags), 1),
        lead_days=sorted(leads),
        missed=missed,
        false_flags=false_flags,
    )
