"""The time-step kernel: every cell of a system advanced together, compiled with numba.

State lives in a few 2-D float arrays whose columns are named by the constants below, so the
kernel takes a handful of arguments. Cell arrays are cell-major (one row of quantities per
cell, so one cell's data share a cache line or two); group, branch and bus arrays are
quantity-major. Each step:

1. every cell becomes a Thevenin source over the step (OCV with hysteresis plus the two RC
   voltages' step averages behind an effective resistance; exact for constant current; the
   OCV is linear in SoC between refreshes, exact within each 0.5 % cell of its table);
2. parallel cells combine into series groups (less any balancing bleed across the group) and
   groups into branches (strings);
3. the DC bus node (DC-link capacitor, load, charger, bleed resistor, external short) is solved
   exactly for the step, branch by branch obeying the power path's allowed directions and its
   analog short-circuit cut-off;
4. Kirchhoff gives each cell its current; charge, RC voltages, hysteresis and heat follow.

Slower physics runs at the parameter-refresh rate (``refresh_cells``): SoC- and
temperature-dependent circuit parameters, and the lumped thermal model, which relaxes every
cell exactly towards its coolant and neighbours with the heat of the interval. Positive current
charges the battery. ``kernel_numpy`` holds the vectorised fallback for machines without numba.
"""

from __future__ import annotations

import math

import numpy as np

from cellwarden.compiled import njit

# --- cell state columns (cs) ---
(
    SOC,
    V1,
    V2,
    HYST,
    TEMP,
    CURRENT,
    CHARGE_AS,
    THROUGHPUT_AS,
    LEAK_AS,
    HEAT_PENDING_J,
    HEAT_J,
    TEMP_MIN_SEEN,
    TEMP_MAX_SEEN,
    TEMP_BEYOND_S,
) = range(14)
N_CELL_STATE = 14
# --- cell parameter columns (cp); circuit rows are refreshed at the parameter rate ---
(
    R0,
    R1,
    R2,
    INV_R1,
    INV_R2,
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
    RES_SCALE,
    OCV_REF,
    OCV_SLOPE,
    SOC_REF,
    OCV_GAP,
    LIMIT_MIN_C,
    LIMIT_MAX_C,
) = range(25)
N_CELL_PARAM = 25
# --- integer rows (ci) ---
GROUP, TYPE = range(2)
# --- group rows (gs): Thevenin equivalent, terminal voltage, and the truth watch ---
(
    G_EMF,
    G_RES,
    G_VOLT,
    G_V_MIN_SEEN,
    G_V_MAX_SEEN,
    G_BEYOND_S,
    G_LIMIT_MIN_V,
    G_LIMIT_MAX_V,
    G_BLEED_G,
    G_BLEED_AS,
) = range(10)
N_GROUP = 10
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
    B_ACTIVE,
    B_TRIP_A,
    B_TRIP_DELAY_S,
    B_TRIPPED,
    B_PEAK_A,
    B_TRIP_CURRENT,
    B_OVER_S,
) = range(18)
N_BRANCH = 18
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
    LOAD_MAX_DISCHARGE_A,
    LOAD_MAX_REGEN_A,
) = range(20)
N_BUS = 20
# --- OCV grid (uniform): SoC 0..1, temperature from TEMP_FIRST_C in TEMP_STEP_C ---
N_SOC_GRID = 201
TEMP_FIRST_C = -40.0
TEMP_STEP_C = 5.0
N_TEMP_GRID = 26
OVERCHARGE_SLOPE_V = 30.0  # OCV rise per unit SoC beyond full (a steep wall)
DEEP_DISCHARGE_SLOPE_V = 10.0  # OCV fall per unit SoC below empty
SOC_FLOOR, SOC_CEILING = -0.5, 1.5

MODE_REST, MODE_CURRENT, MODE_POWER, MODE_RESISTANCE, MODE_CHARGE = range(5)


@njit(cache=True, fastmath=True)
def _grid_position(soc, temp_c):
    """Indices and weights of a point on the uniform (temperature, SoC) grid."""
    x = min(max(soc, 0.0), 1.0) * (N_SOC_GRID - 1)
    j = min(int(x), N_SOC_GRID - 2)
    y = min(max((temp_c - TEMP_FIRST_C) / TEMP_STEP_C, 0.0), N_TEMP_GRID - 1.0)
    k = min(int(y), N_TEMP_GRID - 2)
    return k, j, y - k, x - j


@njit(cache=True, fastmath=True)
def _bilinear(stack, outer, inner, k, j, fy, fx):
    """Bilinear value of table ``stack[outer, inner]`` (indexed directly: no views in loops)."""
    return (1.0 - fy) * (
        (1.0 - fx) * stack[outer, inner, k, j] + fx * stack[outer, inner, k, j + 1]
    ) + fy * ((1.0 - fx) * stack[outer, inner, k + 1, j] + fx * stack[outer, inner, k + 1, j + 1])


@njit(cache=True, fastmath=True)
def _linearise_ocv(tables, cell_type, soc, temp_c):
    """OCV (mid branch), its slope in SoC and the hysteresis half-gap around ``soc``.

    The slope is the secant of the table cell holding ``soc``, so the line is exact until SoC
    leaves that cell (0.5 % wide); beyond full or empty the extrapolation slopes apply.
    """
    k, j, fy, fx = _grid_position(soc, temp_c)
    low = _bilinear(tables, cell_type, 0, k, j, fy, 0.0)
    high = _bilinear(tables, cell_type, 0, k, j, fy, 1.0)
    slope = (high - low) * (N_SOC_GRID - 1)
    value = low + (high - low) * fx
    if soc > 1.0:
        value += (soc - 1.0) * OVERCHARGE_SLOPE_V
        slope = OVERCHARGE_SLOPE_V
    elif soc < 0.0:
        value += soc * DEEP_DISCHARGE_SLOPE_V
        slope = DEEP_DISCHARGE_SLOPE_V
    return value, slope, _bilinear(tables, cell_type, 1, k, j, fy, fx)


@njit(cache=True)
def _node_solution(dt, cap_f, v_start, g_total, a_total):
    """Average and final node voltage of C dV/dt = a_total - g_total V over one step."""
    if cap_f <= 0.0:
        v_inf = a_total / g_total
        return v_inf, v_inf
    x = dt * g_total / cap_f
    if x > 50.0:
        v_inf = a_total / g_total
        return v_inf + (v_start - v_inf) / x, v_inf
    drive = (a_total - g_total * v_start) * dt / cap_f  # the move at the starting rate
    phi1 = -math.expm1(-x) / x if x > 0.0 else 1.0  # (1 - e^-x) / x
    phi2 = 0.5 - x / 6.0 + x * x / 24.0 if x < 1e-4 else (1.0 - phi1) / x
    return v_start + drive * phi2, v_start + drive * phi1


@njit(cache=True)
def solve_bus(dt, bs, bus):
    """Solve the DC bus for one step; writes branch currents and bus results in place."""
    n_branch = bs.shape[1]
    for b in range(n_branch):
        bs[B_ACTIVE, b] = bs[B_CONDUCTING, b]
        bs[B_TRIP_CURRENT, b] = 0.0
    v_start = bus[BUS_V]
    mode = int(bus[LOAD_MODE])
    load_i = 0.0
    load_g = 0.0
    fed = v_start > bus[LOAD_MIN_V]  # a load's undervoltage lockout: no current from nothing
    for b in range(n_branch):
        fed = fed or bs[B_CONDUCTING, b] > 0.5
    if mode == MODE_CURRENT:
        if fed:
            load_i = min(max(bus[LOAD_VALUE], -bus[LOAD_MAX_REGEN_A]), bus[LOAD_MAX_DISCHARGE_A])
    elif mode == MODE_POWER:
        if v_start > bus[LOAD_MIN_V]:
            load_i = bus[LOAD_VALUE] / v_start
            load_i = min(max(load_i, -bus[LOAD_MAX_REGEN_A]), bus[LOAD_MAX_DISCHARGE_A])
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
            if bs[B_ACTIVE, b] > 0.5:
                conductance = 1.0 / (bs[B_RES, b] + bs[B_PATH_RES, b])
                g += conductance
                a += conductance * bs[B_EMF, b]
        charger_i = 0.0
        if charger_on:
            v_avg, v_end = _node_solution(dt, bus[BUS_CAP_F], v_start, g, a + bus[CHARGER_IMAX])
            if v_avg > bus[CHARGER_VSET] or v_end > bus[CHARGER_VSET]:
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
            if bs[B_ACTIVE, b] < 0.5:
                bs[B_CURRENT, b] = 0.0
                continue
            current = (v_avg - bs[B_EMF, b]) / (bs[B_RES, b] + bs[B_PATH_RES, b])
            bs[B_CURRENT, b] = current
            if (current > 0.0 and bs[B_ALLOW_CHARGE, b] < 0.5) or (
                current < 0.0 and bs[B_ALLOW_DISCHARGE, b] < 0.5
            ):
                bs[B_ACTIVE, b] = 0.0
                violated = True
            elif bs[B_TRIP_A, b] > 0.0 and abs(current) > bs[B_TRIP_A, b]:
                left_s = bs[B_TRIP_DELAY_S, b] - bs[B_OVER_S, b]
                if left_s <= dt:  # the analog cut-off opens within this step
                    bs[B_TRIPPED, b] = 1.0
                    bs[B_CONDUCTING, b] = 0.0
                    bs[B_ACTIVE, b] = 0.0
                    bs[B_TRIP_CURRENT, b] = current * max(left_s, 0.0) / dt
                    bs[B_PEAK_A, b] = max(bs[B_PEAK_A, b], abs(current))
                    violated = True
        if not violated:
            break
    for b in range(n_branch):
        if bs[B_ACTIVE, b] < 0.5:
            bs[B_CURRENT, b] = bs[B_TRIP_CURRENT, b]
        current = bs[B_CURRENT, b]
        bs[B_PEAK_A, b] = max(bs[B_PEAK_A, b], abs(current))
        over = bs[B_ACTIVE, b] > 0.5 and bs[B_TRIP_A, b] > 0.0 and abs(current) > bs[B_TRIP_A, b]
        bs[B_OVER_S, b] = bs[B_OVER_S, b] + dt if over else 0.0
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
    """Advance every cell ``n_steps`` steps of ``dt`` seconds (electrical and charge state)."""
    n_cells = cs.shape[0]
    n_groups = gs.shape[1]
    n_branch = bs.shape[1]
    emf = np.empty(n_cells)
    ocv = np.empty(n_cells)
    group_g = np.empty(n_groups)
    for _step in range(n_steps):
        # 1. cells as Thevenin sources, summed into their groups
        for g in range(n_groups):
            group_g[g] = 0.0
            gs[G_EMF, g] = 0.0
        for i in range(n_cells):
            u = (
                cp[i, OCV_REF]
                + cp[i, OCV_SLOPE] * (cs[i, SOC] - cp[i, SOC_REF])
                + cs[i, HYST] * cp[i, OCV_GAP]
            )
            ocv[i] = u
            e = u + cs[i, V1] * cp[i, G1] + cs[i, V2] * cp[i, G2]
            emf[i] = e
            g_index = ci[GROUP, i]
            group_g[g_index] += cp[i, COND]
            gs[G_EMF, g_index] += cp[i, COND] * e
        # 2. groups into branches
        for b in range(n_branch):
            bs[B_EMF, b] = 0.0
            bs[B_RES, b] = 0.0
        for g in range(n_groups):
            gs[G_EMF, g] /= group_g[g]
            gs[G_RES, g] = 1.0 / group_g[g]
            # a balancing bleed resistor across the group draws V/R (last step's V)
            bleed = gs[G_VOLT, g] * gs[G_BLEED_G, g]
            gs[G_BLEED_AS, g] += bleed * dt
            gs[G_EMF, g] -= gs[G_RES, g] * bleed
            b = group_branch[g]
            bs[B_EMF, b] += gs[G_EMF, g]
            bs[B_RES, b] += gs[G_RES, g]
        # 3. the bus, then every group's terminal voltage and the truth watch on it
        solve_bus(dt, bs, bus)
        for g in range(n_groups):
            v = gs[G_EMF, g] + gs[G_RES, g] * bs[B_CURRENT, group_branch[g]]
            gs[G_VOLT, g] = v
            if v < gs[G_V_MIN_SEEN, g]:
                gs[G_V_MIN_SEEN, g] = v
            if v > gs[G_V_MAX_SEEN, g]:
                gs[G_V_MAX_SEEN, g] = v
            if v > gs[G_LIMIT_MAX_V, g] or v < gs[G_LIMIT_MIN_V, g]:
                gs[G_BEYOND_S, g] += dt
        # 4. cell currents and state updates
        for i in range(n_cells):
            current = (gs[G_VOLT, ci[GROUP, i]] - emf[i]) * cp[i, COND]
            drain = cp[i, SELF_DIS]
            if cp[i, SHORT_COND] > 0.0:
                leak = ocv[i] * cp[i, SHORT_COND]
                cs[i, LEAK_AS] += leak * dt
                cs[i, HEAT_PENDING_J] += leak * ocv[i] * dt
                drain += leak * cp[i, INV_CAP]
            soc = cs[i, SOC] + (current * cp[i, INV_CAP] - drain) * dt
            cs[i, SOC] = min(max(soc, SOC_FLOOR), SOC_CEILING)
            v1_old = cs[i, V1]
            v2_old = cs[i, V2]
            v1 = v1_old * cp[i, A1] + cp[i, R1] * current * (1.0 - cp[i, A1])
            v2 = v2_old * cp[i, A2] + cp[i, R2] * current * (1.0 - cp[i, A2])
            cs[i, V1] = v1
            cs[i, V2] = v2
            rate = cp[i, HYST_RATE]
            if rate > 0.0 and current != 0.0:
                x = rate * abs(current) * cp[i, INV_CAP] * dt
                target = 1.0 if current > 0.0 else -1.0
                step = -math.expm1(-x)
                cs[i, HYST] += (target - cs[i, HYST]) * step
            v1_mid = 0.5 * (v1_old + v1)
            v2_mid = 0.5 * (v2_old + v2)
            heat_w = (
                current * current * cp[i, R0]
                + v1_mid * v1_mid * cp[i, INV_R1]
                + v2_mid * v2_mid * cp[i, INV_R2]
            )
            cs[i, CURRENT] = current
            cs[i, CHARGE_AS] += current * dt
            cs[i, THROUGHPUT_AS] += abs(current) * dt
            cs[i, HEAT_PENDING_J] += heat_w * dt


@njit(cache=True, fastmath=True)
def refresh_cells(impedance, tables, cell_type, cs, cp, dt):
    """Look up every cell's circuit at its SoC and temperature and discretise it for ``dt``.

    ``impedance`` holds (field, type, T, SoC) tables of r0, r1, tau1, r2, tau2. The OCV is
    linearised around the present SoC until the next refresh (temperature only changes then).
    """
    for i in range(cs.shape[0]):
        k, j, fy, fx = _grid_position(cs[i, SOC], cs[i, TEMP])
        t = cell_type[i]
        ocv, slope, gap = _linearise_ocv(tables, t, cs[i, SOC], cs[i, TEMP])
        cp[i, OCV_REF] = ocv
        cp[i, OCV_SLOPE] = slope
        cp[i, SOC_REF] = cs[i, SOC]
        cp[i, OCV_GAP] = gap
        scale = cp[i, RES_SCALE]
        r0 = _bilinear(impedance, 0, t, k, j, fy, fx) * scale
        r1 = _bilinear(impedance, 1, t, k, j, fy, fx) * scale
        tau1 = max(_bilinear(impedance, 2, t, k, j, fy, fx), 1e-6)
        r2 = _bilinear(impedance, 3, t, k, j, fy, fx) * scale
        tau2 = max(_bilinear(impedance, 4, t, k, j, fy, fx), 1e-6)
        a1 = math.exp(-dt / tau1)
        a2 = math.exp(-dt / tau2)
        g1 = (1.0 - a1) * tau1 / dt
        g2 = (1.0 - a2) * tau2 / dt
        cp[i, R0] = r0
        cp[i, R1] = r1
        cp[i, R2] = r2
        cp[i, INV_R1] = 1.0 / r1 if r1 > 0.0 else 0.0
        cp[i, INV_R2] = 1.0 / r2 if r2 > 0.0 else 0.0
        cp[i, A1] = a1
        cp[i, A2] = a2
        cp[i, G1] = g1
        cp[i, G2] = g2
        cp[i, COND] = 1.0 / (r0 + r1 * (1.0 - g1) + r2 * (1.0 - g2))


@njit(cache=True, fastmath=True)
def relax_temperatures(cs, cp, coolant_c, interval_s):
    """Lumped thermal step over ``interval_s`` with the heat accrued in it.

    Each cell relaxes exactly towards the steady state set by its heat, its coolant and its
    neighbours' temperatures at the start of the interval. The truth watch keeps each cell's
    extremes and its time beyond the temperature safety limits.
    """
    n_cells = cs.shape[0]
    left = 0.0
    for i in range(n_cells):
        t_old = cs[i, TEMP]
        heat_w = cs[i, HEAT_PENDING_J] / interval_s
        cs[i, HEAT_J] += cs[i, HEAT_PENDING_J]
        cs[i, HEAT_PENDING_J] = 0.0
        right = cs[i + 1, TEMP] if i + 1 < n_cells else 0.0
        g_sum = cp[i, COOL_G] + cp[i, NB_LEFT] + cp[i, NB_RIGHT]
        if g_sum > 0.0:
            t_inf = (
                heat_w + cp[i, COOL_G] * coolant_c + cp[i, NB_LEFT] * left + cp[i, NB_RIGHT] * right
            ) / g_sum
            decay = math.exp(-interval_s * g_sum / cp[i, HEAT_CAP])
            cs[i, TEMP] = t_inf + (t_old - t_inf) * decay
        else:
            cs[i, TEMP] = t_old + heat_w * interval_s / cp[i, HEAT_CAP]
        left = t_old
        t_new = cs[i, TEMP]
        cs[i, TEMP_MIN_SEEN] = min(cs[i, TEMP_MIN_SEEN], t_new)
        cs[i, TEMP_MAX_SEEN] = max(cs[i, TEMP_MAX_SEEN], t_new)
        if t_new > cp[i, LIMIT_MAX_C] or t_new < cp[i, LIMIT_MIN_C]:
            cs[i, TEMP_BEYOND_S] += interval_s


def soc_grid() -> np.ndarray:
    """The uniform SoC axis of the kernel's tables."""
    return np.linspace(0.0, 1.0, N_SOC_GRID)


def temp_grid_c() -> np.ndarray:
    """The uniform temperature axis of the kernel's tables."""
    return TEMP_FIRST_C + TEMP_STEP_C * np.arange(N_TEMP_GRID)
