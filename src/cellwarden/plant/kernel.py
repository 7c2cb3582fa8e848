"""The time-step kernel: every cell of a system advanced together, compiled with numba.

State lives in a few 2-D float arrays whose rows are named by the constants below, so the
kernel takes a handful of arguments and the hot loops run over contiguous rows. Each step:

1. every cell becomes a Thevenin source over the step (OCV with hysteresis plus the two RC
   voltages' step averages behind an effective resistance; exact for constant current);
2. parallel cells combine into series groups and groups into branches (strings);
3. the DC bus node (DC-link capacitor, load, charger, bleed resistor, external short) is solved
   exactly for the step, branch by branch obeying the power path's allowed directions;
4. Kirchhoff gives each cell its current; charge, RC voltages, hysteresis and heat follow, and
   the lumped thermal model relaxes every cell towards its coolant and neighbours.

Positive current charges the battery. Without numba the same functions run as plain Python,
and ``advance_numpy`` is the vectorised fallback used instead of the per-cell loops.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(function):
            return function

        return wrap(args[0]) if args and callable(args[0]) else wrap


# --- cell state rows (cs) ---
SOC, V1, V2, HYST, TEMP, CURRENT, CHARGE_AS, THROUGHPUT_AS, HEAT_J, LEAK_AS = range(10)
N_CELL_STATE = 10
# --- cell parameter rows (cp), refreshed at the parameter rate ---
(
    R0,
    R1,
    R2,
    A1,
    A2,
    G1,
    G2,
    COND,
    INV_CAP,
    SELF_DIS,
    SHORT_COND,
    HEAT_CAP,
    COOL_G,
    NB_LEFT,
    NB_RIGHT,
    HYST_RATE,
    THERM_DECAY,
) = range(17)
N_CELL_PARAM = 17
# --- integer rows (ci) ---
GROUP, TYPE = range(2)
# --- group rows (gs) ---
G_EMF, G_RES, G_VOLT = range(3)
N_GROUP = 3
# --- branch rows (bs) ---
(
    B_EMF,
    B_RES,
    B_PATH_RES,
    B_CONDUCTING,
    B_ALLOW_CHARGE,
    B_ALLOW_DISCHARGE,
    B_CURRENT,
    B_CHARGED_AS,
    B_DISCHARGED_AS,
    B_CHARGED_J,
    B_DISCHARGED_J,
) = range(11)
N_BRANCH = 11
# --- bus entries (bus) ---
(
    BUS_V,
    BUS_CAP_F,
    BUS_BLEED_G,
    LOAD_MODE,
    LOAD_VALUE,
    LOAD_MIN_V,
    CHARGER_ON,
    CHARGER_IMAX,
    CHARGER_VSET,
    CHARGER_RES,
    SHORT_G,
    COOLANT_C,
    LOAD_ENERGY_J,
    CHARGER_ENERGY_J,
    LOAD_CURRENT,
    CHARGER_CURRENT,
    SHORT_CURRENT,
    BLEED_ENERGY_J,
) = range(18)
N_BUS = 18
# --- OCV grid (uniform): SoC 0..1, temperature from TEMP_FIRST_C in TEMP_STEP_C ---
N_SOC_GRID = 201
TEMP_FIRST_C = -40.0
TEMP_STEP_C = 5.0
N_TEMP_GRID = 26
OVERCHARGE_SLOPE_V = 3.0  # OCV rise per unit SoC beyond full
DEEP_DISCHARGE_SLOPE_V = 10.0  # OCV fall per unit SoC below empty
SOC_FLOOR, SOC_CEILING = -0.5, 1.5

MODE_REST, MODE_CURRENT, MODE_POWER, MODE_RESISTANCE, MODE_CHARGE = range(5)


@njit(cache=True, fastmath=True)
def ocv_lookup(tables, cell_type, soc, temp_c, hyst):
    """OCV with hysteresis from the uniform (type, {mid, half-gap}, T, SoC) tables."""
    x = min(max(soc, 0.0), 1.0) * (N_SOC_GRID - 1)
    j = min(int(x), N_SOC_GRID - 2)
    fx = x - j
    y = (temp_c - TEMP_FIRST_C) / TEMP_STEP_C
    y = min(max(y, 0.0), N_TEMP_GRID - 1.0)
    k = min(int(y), N_TEMP_GRID - 2)
    fy = y - k
    w00 = (1.0 - fy) * (1.0 - fx)
    w01 = (1.0 - fy) * fx
    w10 = fy * (1.0 - fx)
    w11 = fy * fx
    mid = tables[cell_type, 0]
    gap = tables[cell_type, 1]
    value = w00 * mid[k, j] + w01 * mid[k, j + 1] + w10 * mid[k + 1, j] + w11 * mid[k + 1, j + 1]
    value += hyst * (
        w00 * gap[k, j] + w01 * gap[k, j + 1] + w10 * gap[k + 1, j] + w11 * gap[k + 1, j + 1]
    )
    if soc > 1.0:
        value += (soc - 1.0) * OVERCHARGE_SLOPE_V
    elif soc < 0.0:
        value += soc * DEEP_DISCHARGE_SLOPE_V
    return value


@njit(cache=True)
def _node_solution(dt, cap_f, v_start, g_total, a_total):
    """Average and final node voltage of C dV/dt = a_total - g_total V over one step."""
    v_inf = a_total / g_total
    if cap_f <= 0.0:
        return v_inf, v_inf
    x = dt * g_total / cap_f
    if x > 50.0:
        return v_inf + (v_start - v_inf) / x, v_inf
    decay = math.exp(-x)
    v_end = v_inf + (v_start - v_inf) * decay
    v_avg = v_inf + (v_start - v_inf) * (1.0 - decay) / x
    return v_avg, v_end


@njit(cache=True)
def solve_bus(dt, bs, bus):
    """Solve the DC bus for one step; writes branch currents and bus results in place."""
    n_branch = bs.shape[1]
    active = np.zeros(n_branch, dtype=np.bool_)
    for b in range(n_branch):
        active[b] = bs[B_CONDUCTING, b] > 0.5
    v_start = bus[BUS_V]
    mode = int(bus[LOAD_MODE])
    load_i = 0.0
    load_g = 0.0
    if mode == MODE_CURRENT:
        load_i = bus[LOAD_VALUE]
    elif mode == MODE_POWER:
        if v_start > bus[LOAD_MIN_V]:
            load_i = bus[LOAD_VALUE] / v_start
    elif mode == MODE_RESISTANCE:
        load_g = 1.0 / bus[LOAD_VALUE]
    charger_on = bus[CHARGER_ON] > 0.5 and mode == MODE_CHARGE
    v_avg = v_start
    v_end = v_start
    charger_i = 0.0
    for _attempt in range(n_branch + 2):
        g = bus[BUS_BLEED_G] + load_g + bus[SHORT_G]
        a = -load_i
        for b in range(n_branch):
            if active[b]:
                conductance = 1.0 / (bs[B_RES, b] + bs[B_PATH_RES, b])
                g += conductance
                a += conductance * bs[B_EMF, b]
        charger_i = 0.0
        if charger_on:
            v_avg, v_end = _node_solution(dt, bus[BUS_CAP_F], v_start, g, a + bus[CHARGER_IMAX])
            if v_avg > bus[CHARGER_VSET]:
                g_ch = 1.0 / bus[CHARGER_RES]
                v_avg, v_end = _node_solution(
                    dt, bus[BUS_CAP_F], v_start, g + g_ch, a + g_ch * bus[CHARGER_VSET]
                )
                charger_i = max(0.0, (bus[CHARGER_VSET] - v_avg) * g_ch)
                if charger_i == 0.0:
                    v_avg, v_end = _node_solution(dt, bus[BUS_CAP_F], v_start, g, a)
            else:
                charger_i = bus[CHARGER_IMAX]
        else:
            v_avg, v_end = _node_solution(dt, bus[BUS_CAP_F], v_start, g, a)
        violated = False
        for b in range(n_branch):
            if not active[b]:
                bs[B_CURRENT, b] = 0.0
                continue
            current = (v_avg - bs[B_EMF, b]) / (bs[B_RES, b] + bs[B_PATH_RES, b])
            bs[B_CURRENT, b] = current
            if (current > 0.0 and bs[B_ALLOW_CHARGE, b] < 0.5) or (
                current < 0.0 and bs[B_ALLOW_DISCHARGE, b] < 0.5
            ):
                active[b] = False
                violated = True
        if not violated:
            break
    for b in range(n_branch):
        if not active[b]:
            bs[B_CURRENT, b] = 0.0
        current = bs[B_CURRENT, b]
        power = (bs[B_EMF, b] + bs[B_RES, b] * current) * current
        if current > 0.0:
            bs[B_CHARGED_AS, b] += current * dt
            bs[B_CHARGED_J, b] += power * dt
        else:
            bs[B_DISCHARGED_AS, b] -= current * dt
            bs[B_DISCHARGED_J, b] -= power * dt
    if mode == MODE_RESISTANCE:
        load_i = v_avg * load_g
    bus[BUS_V] = v_end
    bus[LOAD_CURRENT] = load_i
    bus[CHARGER_CURRENT] = charger_i
    bus[SHORT_CURRENT] = v_avg * bus[SHORT_G]
    bus[LOAD_ENERGY_J] += load_i * v_avg * dt
    bus[CHARGER_ENERGY_J] += charger_i * v_avg * dt
    bus[BLEED_ENERGY_J] += (bus[BUS_BLEED_G] + bus[SHORT_G]) * v_avg * v_avg * dt


@njit(cache=True, fastmath=True)
def advance(n_steps, dt, cs, cp, ci, tables, gs, group_branch, bs, bus):
    """Advance every cell ``n_steps`` steps of ``dt`` seconds."""
    n_cells = cs.shape[1]
    n_groups = gs.shape[1]
    n_branch = bs.shape[1]
    emf = np.empty(n_cells)
    ocv = np.empty(n_cells)
    new_temp = np.empty(n_cells)
    group_g = np.empty(n_groups)
    for _step in range(n_steps):
        # 1. cells as Thevenin sources, summed into their groups
        for g in range(n_groups):
            group_g[g] = 0.0
            gs[G_EMF, g] = 0.0
        for i in range(n_cells):
            u = ocv_lookup(tables, ci[TYPE, i], cs[SOC, i], cs[TEMP, i], cs[HYST, i])
            ocv[i] = u
            e = u + cs[V1, i] * cp[G1, i] + cs[V2, i] * cp[G2, i]
            emf[i] = e
            g_index = ci[GROUP, i]
            group_g[g_index] += cp[COND, i]
            gs[G_EMF, g_index] += cp[COND, i] * e
        # 2. groups into branches
        for b in range(n_branch):
            bs[B_EMF, b] = 0.0
            bs[B_RES, b] = 0.0
        for g in range(n_groups):
            gs[G_EMF, g] /= group_g[g]
            gs[G_RES, g] = 1.0 / group_g[g]
            b = group_branch[g]
            bs[B_EMF, b] += gs[G_EMF, g]
            bs[B_RES, b] += gs[G_RES, g]
        # 3. the bus
        solve_bus(dt, bs, bus)
        for g in range(n_groups):
            gs[G_VOLT, g] = gs[G_EMF, g] + gs[G_RES, g] * bs[B_CURRENT, group_branch[g]]
        # 4. cell currents and state updates
        coolant = bus[COOLANT_C]
        for i in range(n_cells):
            current = (gs[G_VOLT, ci[GROUP, i]] - emf[i]) * cp[COND, i]
            leak = ocv[i] * cp[SHORT_COND, i]
            soc = cs[SOC, i] + ((current - leak) * cp[INV_CAP, i] - cp[SELF_DIS, i]) * dt
            cs[SOC, i] = min(max(soc, SOC_FLOOR), SOC_CEILING)
            v1_old = cs[V1, i]
            v2_old = cs[V2, i]
            v1 = v1_old * cp[A1, i] + cp[R1, i] * current * (1.0 - cp[A1, i])
            v2 = v2_old * cp[A2, i] + cp[R2, i] * current * (1.0 - cp[A2, i])
            cs[V1, i] = v1
            cs[V2, i] = v2
            rate = cp[HYST_RATE, i]
            if rate > 0.0 and current != 0.0:
                x = rate * abs(current) * cp[INV_CAP, i] * dt
                target = 1.0 if current > 0.0 else -1.0
                step = x if x < 1e-3 else 1.0 - math.exp(-x)
                cs[HYST, i] += (target - cs[HYST, i]) * step
            v1_mid = 0.5 * (v1_old + v1)
            v2_mid = 0.5 * (v2_old + v2)
            heat_w = current * current * cp[R0, i] + leak * ocv[i]
            if cp[R1, i] > 0.0:
                heat_w += v1_mid * v1_mid / cp[R1, i]
            if cp[R2, i] > 0.0:
                heat_w += v2_mid * v2_mid / cp[R2, i]
            cs[CURRENT, i] = current
            cs[CHARGE_AS, i] += current * dt
            cs[THROUGHPUT_AS, i] += abs(current) * dt
            cs[LEAK_AS, i] += leak * dt
            cs[HEAT_J, i] += heat_w * dt
            # lumped thermal model: exact relaxation towards coolant and old neighbour temps
            left = cs[TEMP, i - 1] if i > 0 else 0.0
            right = cs[TEMP, i + 1] if i + 1 < n_cells else 0.0
            g_sum = cp[COOL_G, i] + cp[NB_LEFT, i] + cp[NB_RIGHT, i]
            t_old = cs[TEMP, i]
            if g_sum > 0.0:
                t_inf = (
                    heat_w
                    + cp[COOL_G, i] * coolant
                    + cp[NB_LEFT, i] * left
                    + cp[NB_RIGHT, i] * right
                ) / g_sum
                new_temp[i] = t_inf + (t_old - t_inf) * cp[THERM_DECAY, i]
            else:
                new_temp[i] = t_old + heat_w * dt / cp[HEAT_CAP, i]
        for i in range(n_cells):
            cs[TEMP, i] = new_temp[i]


def advance_numpy(n_steps, dt, cs, cp, ci, tables, gs, group_branch, bs, bus):
    """Vectorised NumPy twin of ``advance`` for machines without numba."""
    n_groups, n_branch = gs.shape[1], bs.shape[1]
    groups = ci[GROUP]
    g_sum = cp[COOL_G] + cp[NB_LEFT] + cp[NB_RIGHT]
    for _step in range(n_steps):
        ocv = ocv_numpy(tables, ci[TYPE], cs[SOC], cs[TEMP], cs[HYST])
        emf = ocv + cs[V1] * cp[G1] + cs[V2] * cp[G2]
        group_g = np.bincount(groups, cp[COND], n_groups)
        gs[G_EMF] = np.bincount(groups, cp[COND] * emf, n_groups) / group_g
        gs[G_RES] = 1.0 / group_g
        bs[B_EMF] = np.bincount(group_branch, gs[G_EMF], n_branch)
        bs[B_RES] = np.bincount(group_branch, gs[G_RES], n_branch)
        solve_bus(dt, bs, bus)
        gs[G_VOLT] = gs[G_EMF] + gs[G_RES] * bs[B_CURRENT, group_branch]
        current = (gs[G_VOLT, groups] - emf) * cp[COND]
        leak = ocv * cp[SHORT_COND]
        soc = cs[SOC] + ((current - leak) * cp[INV_CAP] - cp[SELF_DIS]) * dt
        cs[SOC] = np.clip(soc, SOC_FLOOR, SOC_CEILING)
        v1_old, v2_old = cs[V1].copy(), cs[V2].copy()
        cs[V1] = v1_old * cp[A1] + cp[R1] * current * (1.0 - cp[A1])
        cs[V2] = v2_old * cp[A2] + cp[R2] * current * (1.0 - cp[A2])
        x = cp[HYST_RATE] * np.abs(current) * cp[INV_CAP] * dt
        cs[HYST] += (np.sign(current) - cs[HYST]) * -np.expm1(-x)
        v1_mid, v2_mid = 0.5 * (v1_old + cs[V1]), 0.5 * (v2_old + cs[V2])
        safe_r1 = np.where(cp[R1] > 0, cp[R1], np.inf)
        safe_r2 = np.where(cp[R2] > 0, cp[R2], np.inf)
        heat_w = current**2 * cp[R0] + leak * ocv + v1_mid**2 / safe_r1 + v2_mid**2 / safe_r2
        cs[CURRENT] = current
        cs[CHARGE_AS] += current * dt
        cs[THROUGHPUT_AS] += np.abs(current) * dt
        cs[LEAK_AS] += leak * dt
        cs[HEAT_J] += heat_w * dt
        temp = cs[TEMP]
        left = np.concatenate([[0.0], temp[:-1]])
        right = np.concatenate([temp[1:], [0.0]])
        inflow = heat_w + cp[COOL_G] * bus[COOLANT_C] + cp[NB_LEFT] * left + cp[NB_RIGHT] * right
        t_inf = inflow / np.where(g_sum > 0, g_sum, 1.0)
        relaxed = t_inf + (temp - t_inf) * cp[THERM_DECAY]
        cs[TEMP] = np.where(g_sum > 0, relaxed, temp + heat_w * dt / cp[HEAT_CAP])


def ocv_numpy(tables, cell_type, soc, temp_c, hyst):
    """Vectorised ``ocv_lookup`` over arrays of cells."""
    value = bilinear_numpy(tables[:, 0], cell_type, soc, temp_c)
    value += hyst * bilinear_numpy(tables[:, 1], cell_type, soc, temp_c)
    value += np.where(soc > 1.0, (soc - 1.0) * OVERCHARGE_SLOPE_V, 0.0)
    value += np.where(soc < 0.0, soc * DEEP_DISCHARGE_SLOPE_V, 0.0)
    return value


def bilinear_numpy(table_stack, cell_type, soc, temp_c):
    """Values of per-type uniform-grid tables (type, T, SoC) at each cell's SoC and temperature."""
    x = np.clip(soc, 0.0, 1.0) * (N_SOC_GRID - 1)
    j = np.minimum(x.astype(np.int64), N_SOC_GRID - 2)
    fx = x - j
    y = np.clip((temp_c - TEMP_FIRST_C) / TEMP_STEP_C, 0.0, N_TEMP_GRID - 1.0)
    k = np.minimum(y.astype(np.int64), N_TEMP_GRID - 2)
    fy = y - k
    t = table_stack
    return (1 - fy) * ((1 - fx) * t[cell_type, k, j] + fx * t[cell_type, k, j + 1]) + fy * (
        (1 - fx) * t[cell_type, k + 1, j] + fx * t[cell_type, k + 1, j + 1]
    )


def soc_grid() -> np.ndarray:
    """The uniform SoC axis of the kernel's tables."""
    return np.linspace(0.0, 1.0, N_SOC_GRID)


def temp_grid_c() -> np.ndarray:
    """The uniform temperature axis of the kernel's tables."""
    return TEMP_FIRST_C + TEMP_STEP_C * np.arange(N_TEMP_GRID)
