"""Vectorised NumPy twins of the numba kernel, for machines without numba and as a cross-check.

Same arrays, same rows, same physics; see ``kernel`` for the model.
"""

from __future__ import annotations

import numpy as np

from cellwarden.plant.kernel import (
    A1,
    A2,
    B_CURRENT,
    B_EMF,
    B_RES,
    CHARGE_AS,
    COND,
    COOL_G,
    CURRENT,
    DEEP_DISCHARGE_SLOPE_V,
    G1,
    G2,
    G_BEYOND_S,
    G_BLEED_AS,
    G_BLEED_G,
    G_EMF,
    G_LIMIT_MAX_V,
    G_LIMIT_MIN_V,
    G_RES,
    G_V_MAX_SEEN,
    G_V_MIN_SEEN,
    G_VOLT,
    GROUP,
    HEAT_CAP,
    HEAT_J,
    HEAT_PENDING_J,
    HYST,
    HYST_RATE,
    INV_CAP,
    INV_R1,
    INV_R2,
    LEAK_AS,
    LIMIT_MAX_C,
    LIMIT_MIN_C,
    N_SOC_GRID,
    N_TEMP_GRID,
    NB_LEFT,
    NB_RIGHT,
    OCV_GAP,
    OCV_REF,
    OCV_SLOPE,
    OVERCHARGE_SLOPE_V,
    R0,
    R1,
    R2,
    RES_SCALE,
    SELF_DIS,
    SHORT_COND,
    SOC,
    SOC_CEILING,
    SOC_FLOOR,
    SOC_REF,
    TEMP,
    TEMP_BEYOND_S,
    TEMP_FIRST_C,
    TEMP_MAX_SEEN,
    TEMP_MIN_SEEN,
    TEMP_STEP_C,
    THROUGHPUT_AS,
    V1,
    V2,
    solve_bus,
)


def _grid_position(soc: np.ndarray, temp_c: np.ndarray):
    x = np.clip(soc, 0.0, 1.0) * (N_SOC_GRID - 1)
    j = np.minimum(x.astype(np.int64), N_SOC_GRID - 2)
    y = np.clip((temp_c - TEMP_FIRST_C) / TEMP_STEP_C, 0.0, N_TEMP_GRID - 1.0)
    k = np.minimum(y.astype(np.int64), N_TEMP_GRID - 2)
    return k, j, y - k, x - j


def _corner(table_stack, cell_type, k, j, fy) -> np.ndarray:
    """Table value at SoC node ``j``, interpolated in temperature."""
    t = table_stack
    return (1 - fy) * t[cell_type, k, j] + fy * t[cell_type, k + 1, j]


def bilinear_numpy(table_stack, cell_type, soc, temp_c) -> np.ndarray:
    """Values of per-type uniform-grid tables (type, T, SoC) at each cell's SoC and temperature."""
    k, j, fy, fx = _grid_position(np.asarray(soc, float), np.asarray(temp_c, float))
    t = table_stack
    return (1 - fy) * ((1 - fx) * t[cell_type, k, j] + fx * t[cell_type, k, j + 1]) + fy * (
        (1 - fx) * t[cell_type, k + 1, j] + fx * t[cell_type, k + 1, j + 1]
    )


def ocv_numpy(tables, cell_type, soc, temp_c, hyst) -> np.ndarray:
    """Every cell's OCV with hysteresis."""
    value = bilinear_numpy(tables[:, 0], cell_type, soc, temp_c)
    value += hyst * bilinear_numpy(tables[:, 1], cell_type, soc, temp_c)
    value += np.where(soc > 1.0, (soc - 1.0) * OVERCHARGE_SLOPE_V, 0.0)
    value += np.where(soc < 0.0, soc * DEEP_DISCHARGE_SLOPE_V, 0.0)
    return value


def advance_numpy(n_steps, dt, cs, cp, ci, tables, gs, group_branch, bs, bus) -> None:
    """Vectorised twin of ``kernel.advance``."""
    n_groups, n_branch = gs.shape[1], bs.shape[1]
    groups = ci[GROUP]
    for _step in range(n_steps):
        ocv = cp[OCV_REF] + cp[OCV_SLOPE] * (cs[SOC] - cp[SOC_REF]) + cs[HYST] * cp[OCV_GAP]
        emf = ocv + cs[V1] * cp[G1] + cs[V2] * cp[G2]
        group_g = np.bincount(groups, cp[COND], n_groups)
        gs[G_EMF] = np.bincount(groups, cp[COND] * emf, n_groups) / group_g
        gs[G_RES] = 1.0 / group_g
        bleed = gs[G_VOLT] * gs[G_BLEED_G]
        gs[G_BLEED_AS] += bleed * dt
        gs[G_EMF] -= gs[G_RES] * bleed
        bs[B_EMF] = np.bincount(group_branch, gs[G_EMF], n_branch)
        bs[B_RES] = np.bincount(group_branch, gs[G_RES], n_branch)
        solve_bus(dt, bs, bus)
        volt = gs[G_EMF] + gs[G_RES] * bs[B_CURRENT, group_branch]
        gs[G_VOLT] = volt
        gs[G_V_MIN_SEEN] = np.minimum(gs[G_V_MIN_SEEN], volt)
        gs[G_V_MAX_SEEN] = np.maximum(gs[G_V_MAX_SEEN], volt)
        gs[G_BEYOND_S] += np.where((volt > gs[G_LIMIT_MAX_V]) | (volt < gs[G_LIMIT_MIN_V]), dt, 0)
        current = (volt[groups] - emf) * cp[COND]
        leak = ocv * cp[SHORT_COND]
        cs[LEAK_AS] += leak * dt
        soc = cs[SOC] + ((current - leak) * cp[INV_CAP] - cp[SELF_DIS]) * dt
        cs[SOC] = np.clip(soc, SOC_FLOOR, SOC_CEILING)
        v1_old, v2_old = cs[V1].copy(), cs[V2].copy()
        cs[V1] = v1_old * cp[A1] + cp[R1] * current * (1.0 - cp[A1])
        cs[V2] = v2_old * cp[A2] + cp[R2] * current * (1.0 - cp[A2])
        x = cp[HYST_RATE] * np.abs(current) * cp[INV_CAP] * dt
        cs[HYST] += (np.sign(current) - cs[HYST]) * -np.expm1(-x)
        v1_mid, v2_mid = 0.5 * (v1_old + cs[V1]), 0.5 * (v2_old + cs[V2])
        heat_w = current**2 * cp[R0] + v1_mid**2 * cp[INV_R1] + v2_mid**2 * cp[INV_R2]
        cs[CURRENT] = current
        cs[CHARGE_AS] += current * dt
        cs[THROUGHPUT_AS] += np.abs(current) * dt
        cs[HEAT_PENDING_J] += (heat_w + leak * ocv) * dt


def refresh_cells_numpy(impedance, tables, cell_type, cs, cp, dt) -> None:
    """Vectorised twin of ``kernel.refresh_cells``."""
    soc, temp = cs[SOC], cs[TEMP]
    k, j, fy, _ = _grid_position(soc, temp)
    low = _corner(tables[:, 0], cell_type, k, j, fy)
    high = _corner(tables[:, 0], cell_type, k, j + 1, fy)
    x = np.clip(soc, 0.0, 1.0) * (N_SOC_GRID - 1)
    cp[OCV_REF] = (
        low
        + (high - low) * (x - j)
        + np.where(soc > 1.0, (soc - 1.0) * OVERCHARGE_SLOPE_V, 0.0)
        + np.where(soc < 0.0, soc * DEEP_DISCHARGE_SLOPE_V, 0.0)
    )
    cp[OCV_SLOPE] = np.select(
        [soc > 1.0, soc < 0.0],
        [OVERCHARGE_SLOPE_V, DEEP_DISCHARGE_SLOPE_V],
        (high - low) * (N_SOC_GRID - 1),
    )
    cp[SOC_REF] = soc
    cp[OCV_GAP] = bilinear_numpy(tables[:, 1], cell_type, soc, temp)
    r0, r1, tau1, r2, tau2 = (
        bilinear_numpy(impedance[f], cell_type, cs[SOC], cs[TEMP]) for f in range(5)
    )
    scale = cp[RES_SCALE]
    cp[R0], cp[R1], cp[R2] = r0 * scale, r1 * scale, r2 * scale
    with np.errstate(divide="ignore"):
        cp[INV_R1] = np.where(cp[R1] > 0, 1.0 / cp[R1], 0.0)
        cp[INV_R2] = np.where(cp[R2] > 0, 1.0 / cp[R2], 0.0)
    for rate_row, mean_row, tau in ((A1, G1, tau1), (A2, G2, tau2)):
        ratio = dt / np.maximum(tau, 1e-6)
        cp[rate_row] = np.exp(-ratio)
        cp[mean_row] = -np.expm1(-ratio) / ratio
    cp[COND] = 1.0 / (cp[R0] + cp[R1] * (1.0 - cp[G1]) + cp[R2] * (1.0 - cp[G2]))


def relax_temperatures_numpy(cs, cp, coolant_c, interval_s) -> None:
    """Vectorised twin of ``kernel.relax_temperatures``."""
    temp = cs[TEMP].copy()
    heat_w = cs[HEAT_PENDING_J] / interval_s
    cs[HEAT_J] += cs[HEAT_PENDING_J]
    cs[HEAT_PENDING_J] = 0.0
    left = np.concatenate([[0.0], temp[:-1]])
    right = np.concatenate([temp[1:], [0.0]])
    g_sum = cp[COOL_G] + cp[NB_LEFT] + cp[NB_RIGHT]
    inflow = heat_w + cp[COOL_G] * coolant_c + cp[NB_LEFT] * left + cp[NB_RIGHT] * right
    safe_g = np.where(g_sum > 0, g_sum, 1.0)
    t_inf = inflow / safe_g
    relaxed = t_inf + (temp - t_inf) * np.exp(-interval_s * g_sum / cp[HEAT_CAP])
    cs[TEMP] = np.where(g_sum > 0, relaxed, temp + heat_w * interval_s / cp[HEAT_CAP])
    cs[TEMP_MIN_SEEN] = np.minimum(cs[TEMP_MIN_SEEN], cs[TEMP])
    cs[TEMP_MAX_SEEN] = np.maximum(cs[TEMP_MAX_SEEN], cs[TEMP])
    beyond = (cs[TEMP] > cp[LIMIT_MAX_C]) | (cs[TEMP] < cp[LIMIT_MIN_C])
    cs[TEMP_BEYOND_S] += np.where(beyond, interval_s, 0.0)
