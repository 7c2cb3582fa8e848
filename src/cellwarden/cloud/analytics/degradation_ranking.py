"""Degradation per pack from noisy BMS estimates, the fleet ranking, peer outliers and
rotation advice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellwarden.cloud.analytics.history_matrix import HistoryMatrix
from cellwarden.cloud.analytics.soh_model import clean_observations

TREND_DAYS = 365  # a year of estimates, so that seasons do not bend the rate
MIN_TREND_POINTS = 60
OUTLIER_Z = 3.5
MIN_PEERS = 5
ROTATION_SOH_GAP_PCT = 3.0
ROTATION_USAGE_RATIO = 1.5


def degradation(matrix: HistoryMatrix) -> pd.DataFrame:
    """Per pack: SoH now and its fade rate (least squares over the last year of cleaned
    estimates), the duty (cycles per day, mean temperature) and the peer group."""
    soh, _sigma = clean_observations(matrix.column("soh_capacity_pct"))
    days = np.arange(soh.shape[1], dtype=float)
    last = matrix.last_day()
    window = (days[None, :] > (last - TREND_DAYS)[:, None]) & (days[None, :] <= last[:, None])
    usable = window & np.isfinite(soh)
    count = usable.sum(axis=1)
    x = np.where(usable, days[None, :] - last[:, None], 0.0)
    y = np.where(usable, soh, 0.0)
    n = np.maximum(count, 1)
    mean_x, mean_y = x.sum(1) / n, y.sum(1) / n
    sxx = (np.where(usable, x - mean_x[:, None], 0.0) ** 2).sum(1)
    sxy = (np.where(usable, (x - mean_x[:, None]) * (y - mean_y[:, None]), 0.0)).sum(1)
    slope = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)
    enough = count >= MIN_TREND_POINTS
    soh_now = np.where(enough, mean_y - slope * mean_x, np.nan)
    efc = matrix.column("efc_total")
    efc_span = np.nanmax(np.where(window, efc, np.nan), 1) - np.nanmin(
        np.where(window, efc, np.nan), 1
    )
    span_days = np.maximum(np.minimum(last - matrix.first_day(), TREND_DAYS - 1), 1)
    efc_per_day = efc_span / span_days
    temp = np.nanmean(np.where(window, matrix.column("temp_mean_c"), np.nan), axis=1)
    fade_per_year = np.where(enough, -slope * 365.0, np.nan)
    frame = pd.DataFrame({
        "pack_id": matrix.pack_ids, "pack_type": matrix.pack_type, "site": matrix.site,
        "soh_now_pct": soh_now, "fade_pct_per_year": fade_per_year,
        "fade_pct_per_100_efc": np.where(efc_per_day > 0, fade_per_year / (efc_per_day * 3.65),
                                         np.nan),
        "efc_per_day": efc_per_day, "temp_mean_c": temp,
    })  # fmt: skip
    frame["duty"] = _duty_class(frame)
    return frame


def _duty_class(frame: pd.DataFrame) -> pd.Series:
    """light / medium / heavy: the pack's cycles per day against the terciles of its type."""
    duty = pd.Series("medium", index=frame.index)
    for _type, group in frame.groupby("pack_type"):
        if len(group) < 3:
            continue
        low, high = np.nanquantile(group["efc_per_day"], [1 / 3, 2 / 3])
        duty[group.index[group["efc_per_day"] <= low]] = "light"
        duty[group.index[group["efc_per_day"] > high]] = "heavy"
    return duty


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """The fleet ranked by fade rate (fastest first), with peer outliers marked: a pack whose
    rate lies more than ``OUTLIER_Z`` robust deviations from packs of its type and duty."""
    ranked = frame.copy()
    ranked["outlier"] = False
    ranked["reason"] = ""
    for (pack_type, duty), group in ranked.groupby(["pack_type", "duty"]):
        rates = group["fade_pct_per_year"]
        if rates.notna().sum() < MIN_PEERS:
            continue
        centre = float(np.nanmedian(rates))
        spread = 1.4826 * float(np.nanmedian(np.abs(rates - centre)))
        spread = max(spread, 0.05 * abs(centre), 0.1)
        z = (rates - centre) / spread
        peer_temp_c = float(np.nanmedian(group["temp_mean_c"]))
        for index in group.index[(z.abs() > OUTLIER_Z).to_numpy()]:
            rate = ranked.at[index, "fade_pct_per_year"]
            direction = "faster" if rate > centre else "slower"
            label = f"{pack_type or 'packs'}, {duty} duty"
            ranked.at[index, "outlier"] = True
            ranked.at[index, "reason"] = (
                f"fades {direction} than its {len(group) - 1} peers ({label}): "
                f"{rate:.2f} against {centre:.2f} %/year; mean temperature "
                f"{ranked.at[index, 'temp_mean_c']:.1f} against {peer_temp_c:.1f} °C"
            )
    ranked = ranked.sort_values("fade_pct_per_year", ascending=False, na_position="last")
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked.reset_index(drop=True)


def rotation_advice(frame: pd.DataFrame) -> pd.DataFrame:
    """Pairs of packs of one type and site to swap duties: the most used pack with lower SoH
    against the least used one with higher SoH, when the gap and the usage ratio are large
    enough to matter; each pack is advised at most once."""
    rows = []
    for (pack_type, site), group in frame.dropna(subset=["soh_now_pct"]).groupby(
        ["pack_type", "site"]
    ):
        heavy = group.sort_values("efc_per_day", ascending=False)
        light = group.sort_values("efc_per_day")
        used: set[str] = set()
        for _, worn in heavy.iterrows():
            if worn["pack_id"] in used:
                continue
            for _, fresh in light.iterrows():
                if fresh["pack_id"] in used or fresh["pack_id"] == worn["pack_id"]:
                    continue
                gap = fresh["soh_now_pct"] - worn["soh_now_pct"]
                ratio = worn["efc_per_day"] / max(fresh["efc_per_day"], 1e-6)
                if gap >= ROTATION_SOH_GAP_PCT and ratio >= ROTATION_USAGE_RATIO:
                    used.update((worn["pack_id"], fresh["pack_id"]))
                    rows.append({
                        "pack_type": pack_type, "site": site,
                        "heavy_pack_id": worn["pack_id"], "light_pack_id": fresh["pack_id"],
                        "reason": f"{worn['pack_id']} runs {worn['efc_per_day']:.2f} cycles/day "
                        f"at SoH {worn['soh_now_pct']:.1f} %, {fresh['pack_id']} "
                        f"{fresh['efc_per_day']:.2f} at {fresh['soh_now_pct']:.1f} %: swap "
                        "their duties to even out ageing",
                    })  # fmt: skip
                    break
    return pd.DataFrame(rows, columns=["pack_type", "site", "heavy_pack_id", "light_pack_id",
                                       "reason"])  # fmt: skip
