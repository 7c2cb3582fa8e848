"""Generate the independent reference traces: PyBaMM's Doyle-Fuller-Newman model, published
parameter sets, tests as a lab runs them and sensors as a real front end has them.

Offline only (CI never runs it): ``pip install -e '.[validation]'`` and then

    PYBAMM_DISABLE_TELEMETRY=true python validation/generate_dfn.py [--only CASE ...]

Every trace is written to ``validation/dfn/<case>/<test>.parquet`` with the trace columns
``time_s, current_a, voltage_v, temp_c`` (what the instruments saw) and ``true_soc_pct``
(ground truth, never shown to the code under test), and ``validation/dfn/<case>/truth.json``
holds the case's facts: the parameter set, the true capacity, the true OCV curve(s), pulse
resistances and the sensor errors drawn for each trace. See validation/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
import pybamm

pybamm.set_logging_level("ERROR")
OUT = Path(__file__).parent / "dfn"
KELVIN = 273.15
FARADAY = 96485.33212


# --- the cells ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ageing:
    """A known ageing state: lost lithium inventory, lost active material, added resistance."""

    lithium_loss: float  # share of the cyclable lithium lost (to SEI, plating)
    negative_material_loss: float  # share of the negative electrode's active material lost
    positive_material_loss: float
    contact_resistance_ohm: float  # film and contact resistance in series


@dataclass(frozen=True)
class Case:
    """One cell at one chamber temperature, with the tests to run on it."""

    key: str
    parameter_set: str
    chemistry: str
    temp_c: float
    tests: tuple[str, ...]
    v_max: float
    v_min: float
    hysteresis_v: float = 0.0  # half-gap of the positive electrode's OCP branches (LFP)
    ageing: Ageing | None = None
    drive_starts: tuple[float, ...] = (0.9, 0.7)  # one two-hour drive from each, rested
    seed: int = 0


NMC_TESTS = ("hppc", "slow", "drive")
CASES = [
    # LG M50 21700, NMC811 / graphite-SiOx, 5 Ah (Chen et al. 2020)
    Case("nmc-chen2020-25c", "Chen2020", "NMC", 25.0, (*NMC_TESTS, "storage", "hppc-chained"),
         4.2, 2.5,
         drive_starts=(0.92, 0.75, 0.6), seed=101),
    Case("nmc-chen2020-10c", "Chen2020", "NMC", 10.0, NMC_TESTS, 4.2, 2.5,
         drive_starts=(0.88, 0.7, 0.55), seed=102),
    Case("nmc-chen2020-40c", "Chen2020", "NMC", 40.0, NMC_TESTS, 4.2, 2.5,
         drive_starts=(0.95, 0.8, 0.65), seed=103),
    # the same cell with a full thermal parameterisation (O'Regan et al. 2022)
    Case("nmc-oregan2022-25c", "ORegan2022", "NMC", 25.0, NMC_TESTS, 4.2, 2.5,
         drive_starts=(0.85, 0.65), seed=111),
    Case("nmc-oregan2022-10c", "ORegan2022", "NMC", 10.0, NMC_TESTS, 4.2, 2.5,
         drive_starts=(0.9, 0.7), seed=112),
    Case("nmc-oregan2022-40c", "ORegan2022", "NMC", 40.0, NMC_TESTS, 4.2, 2.5,
         drive_starts=(0.8, 0.97), seed=113),
    # NMC532 / graphite pouch, 5 Ah (Mohtat et al. 2020)
    Case("nmc-mohtat2020-25c", "Mohtat2020", "NMC", 25.0, NMC_TESTS, 4.2, 2.8,
         drive_starts=(0.9, 0.68), seed=121),
    # A123 26650 LFP / graphite, 2.3 Ah (Prada et al. 2013), with OCP hysteresis added
    Case("lfp-prada2013-25c", "Prada2013", "LFP", 25.0, ("hppc", "slow", "storage"), 3.6, 2.0,
         hysteresis_v=0.010, seed=201),
    Case("lfp-prada2013-10c", "Prada2013", "LFP", 10.0, ("hppc", "slow", "storage"), 3.6, 2.0,
         hysteresis_v=0.010, seed=202),
    Case("lfp-prada2013-40c", "Prada2013", "LFP", 40.0, ("hppc", "slow", "storage"), 3.6, 2.0,
         hysteresis_v=0.010, seed=203),
    # aged LG M50: the usage day a BMS sees, to check its capacity and resistance SoH
    Case("nmc-chen2020-aged-mild-25c", "Chen2020", "NMC", 25.0, ("usage",), 4.2, 2.5,
         ageing=Ageing(0.08, 0.03, 0.02, 0.004), seed=301),
    Case("nmc-chen2020-aged-strong-25c", "Chen2020", "NMC", 25.0, ("usage",), 4.2, 2.5,
         ageing=Ageing(0.16, 0.06, 0.05, 0.012), seed=302),
    Case("nmc-chen2020-fresh-25c", "Chen2020", "NMC", 25.0, ("usage",), 4.2, 2.5,
         ageing=Ageing(0.0, 0.0, 0.0, 0.0), seed=303),
]  # fmt: skip


def parameter_values(case: Case) -> pybamm.ParameterValues:
    """The published set at the chamber temperature, with a 21700-like lumped thermal mass
    cooled by forced air, hysteresis for LFP and the ageing state applied."""
    p = pybamm.ParameterValues(case.parameter_set)
    kelvin = case.temp_c + KELVIN
    p.update(
        {
            "Ambient temperature [K]": kelvin,
            "Initial temperature [K]": kelvin,
            "Upper voltage cut-off [V]": case.v_max + 0.05,  # solver events, beyond the tests'
            "Lower voltage cut-off [V]": case.v_min - 0.05,
            "Open-circuit voltage at 100% SOC [V]": case.v_max,  # the SoC scale
            "Open-circuit voltage at 0% SOC [V]": case.v_min,
            "Total heat transfer coefficient [W.m-2.K-1]": 25.0,
        },
        check_already_exists=False,
    )
    if "Cell volume [m3]" not in p:  # Prada2013 has no thermal data: LG M50's layers
        donor = pybamm.ParameterValues("Chen2020")
        words = ("current collector", "density", "specific heat", "thermal conductivity")
        p.update({k: v for k, v in donor.items() if k not in p and any(w in k for w in words)},
                 check_already_exists=False)  # fmt: skip
        p.update({"Cell cooling surface area [m2]": 0.00637, "Cell volume [m3]": 3.45e-5},
                 check_already_exists=False)  # a 26650 can  # fmt: skip
    if case.hysteresis_v:
        equilibrium = p["Positive electrode OCP [V]"]
        gap = case.hysteresis_v

        def lithiation(sto):  # the positive electrode lithiates on discharge: the lower branch
            return equilibrium(sto) - gap

        def delithiation(sto):
            return equilibrium(sto) + gap

        p.update(
            {
                "Positive electrode lithiation OCP [V]": lithiation,
                "Positive electrode delithiation OCP [V]": delithiation,
                "Positive particle lithiation hysteresis decay rate": 40.0,
                "Positive particle delithiation hysteresis decay rate": 40.0,
                "Initial hysteresis state in positive electrode": -1.0,
            },
            check_already_exists=False,
        )
    if case.ageing is not None:
        a = case.ageing
        for electrode, loss in (("Negative", a.negative_material_loss),
                                ("Positive", a.positive_material_loss)):  # fmt: skip
            name = f"{electrode} electrode active material volume fraction"
            p[name] = p[name] * (1.0 - loss)
        # lithium loss: both electrodes' initial lithium scaled (the ESOH solver places it)
        for electrode in ("negative", "positive"):
            name = f"Initial concentration in {electrode} electrode [mol.m-3]"
            p[name] = p[name] * (1.0 - a.lithium_loss)
        p.update({"Contact resistance [Ohm]": a.contact_resistance_ohm},
                 check_already_exists=False)  # fmt: skip
    return p


def model_options(case: Case) -> dict:
    options = {"thermal": "lumped"}
    if case.hysteresis_v:
        options["open-circuit potential"] = ("single", "one-state hysteresis")
    if case.ageing is not None:
        options["contact resistance"] = "true"
    return options


# --- ground truth -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The negative electrode's stoichiometry at 0 % and 100 % and the capacity between them:
    the cell's SoC scale is its equilibrium OCV from the lower to the upper voltage limit."""

    x0: float
    x100: float
    y0: float
    y100: float
    capacity_ah: float


def soc_window(p: pybamm.ParameterValues) -> Window:
    x100, y100 = pybamm.lithium_ion.get_initial_stoichiometries(1.0, p)
    x0, y0 = pybamm.lithium_ion.get_initial_stoichiometries(0.0, p)
    area = p["Electrode height [m]"] * p["Electrode width [m]"]
    negative_ah = (
        p["Negative electrode active material volume fraction"]
        * p["Negative electrode thickness [m]"]
        * area
        * p["Maximum concentration in negative electrode [mol.m-3]"]
        * FARADAY
        / 3600.0
    )
    return Window(x0, x100, y0, y100, (x100 - x0) * negative_ah)


def ocv_curve(case: Case, p: pybamm.ParameterValues, window: Window, branch: float = 0.0):
    """The cell's equilibrium OCV on a 1 % SoC grid (branch -1 discharge, +1 charge, 0 mean)."""
    soc = np.linspace(0.0, 1.0, 101)
    x = pybamm.Vector(window.x0 + soc * (window.x100 - window.x0))
    y = pybamm.Vector(window.y0 + soc * (window.y100 - window.y0))
    temp_k = pybamm.Scalar(case.temp_c + KELVIN)
    param = pybamm.LithiumIonParameters()
    u_n = p.evaluate(param.n.prim.U(x, temp_k))
    u_p = p.evaluate(param.p.prim.U(y, temp_k))
    return soc, np.asarray(u_p).ravel() + branch * case.hysteresis_v - np.asarray(u_n).ravel()


# --- the tests ----------------------------------------------------------------------------------
def full_charge(case: Case, c_rate: str = "C/2", taper: str = "C/20") -> list[str]:
    return [
        f"Charge at {c_rate} until {case.v_max} V (1 second period)",
        f"Hold at {case.v_max} V until {taper} (1 second period)",
    ]


def hppc(case: Case, chained: bool = False) -> tuple[list, float]:
    """Full charge, an hour's rest, then pulses at 100 %, 90 %, … 10 % and 5 %: 1C for 10 s,
    40 s rest, 0.75C charge for 10 s (not at 100 %), 40 s rest; 10 % at 1C and an hour's rest
    between levels (HPPC as cycler manufacturers ship it). ``chained``: the charge pulse
    follows the discharge pulse at once (a step that does not start from rest)."""
    steps = [*full_charge(case), "Rest for 1 hour (1 second period)"]
    levels = [*[6.0] * 9, 3.0]  # minutes at 1C to the next level
    for index, minutes in enumerate([0.0, *levels]):
        if minutes:
            steps += [
                f"Discharge at 1C for {minutes} minutes or until {case.v_min} V (1 second period)",
                "Rest for 1 hour (1 second period)",
            ]
        steps.append(f"Discharge at 1C for 10 seconds or until {case.v_min} V (0.1 second period)")
        if not (chained and index):
            steps.append("Rest for 40 seconds (0.5 second period)")
        if index:
            steps += ["Charge at 0.75C for 10 seconds (0.1 second period)",
                      "Rest for 40 seconds (0.5 second period)"]  # fmt: skip
    return steps, 0.55


def slow(case: Case) -> tuple[list, float]:
    """Full charge, an hour's rest, C/20 to the lower limit, an hour's rest; LFP also gets a
    C/20 CC-CV recharge and another hour (the charge branch of its OCV)."""
    steps = [*full_charge(case), "Rest for 1 hour (1 second period)",
             f"Discharge at C/20 until {case.v_min} V (1 second period)",
             "Rest for 1 hour (1 second period)"]  # fmt: skip
    if case.chemistry == "LFP":
        steps += [*full_charge(case, "C/20", "C/50"), "Rest for 1 hour (1 second period)"]
    return steps, 0.5


def drive_power(rng: np.random.Generator, duration_s: int, mean_w: float) -> np.ndarray:
    """A synthetic drive: trips of urban stop-and-go and faster stretches (accelerate, cruise
    with fluctuations, brake with regeneration, stop) separated by parking rests, converted
    to cell power with a road-load model; scaled so that the mean discharge power over the
    whole drive is ``mean_w``. One value per second; positive discharges."""
    speed = np.zeros(duration_s)
    t = 60  # a minute parked before leaving
    while t < duration_s - 600:
        trip_end = min(duration_s - 300, t + int(rng.uniform(1200, 2400)))
        while t < trip_end:
            target = rng.choice([rng.uniform(8, 16), rng.uniform(16, 25), rng.uniform(25, 33)],
                                p=[0.5, 0.35, 0.15])  # fmt: skip
            accel = rng.uniform(0.8, 2.5)
            v = speed[t - 1]
            while v < target and t < trip_end:
                v = min(target, v + accel)
                speed[t] = v
                t += 1
            cruise = int(rng.uniform(15, 200))
            for _ in range(cruise):
                if t >= trip_end:
                    break
                v = max(2.0, v + rng.normal(0.0, 0.5))
                speed[t] = v
                t += 1
            brake = rng.uniform(0.8, 2.5)
            while v > 0 and t < trip_end:
                v = max(0.0, v - brake)
                speed[t] = v
                t += 1
            t += int(rng.uniform(5, 45))  # stopped at a light
        t += int(rng.uniform(300, 1200))  # parked
    accel = np.diff(speed, prepend=0.0)
    mass, drag, rolling = 1600.0, 0.5 * 1.2 * 0.62, 0.011 * 1600.0 * 9.81
    wheel_w = (mass * accel + drag * speed**2 + rolling * (speed > 0)) * speed
    battery_w = np.where(wheel_w > 0, wheel_w / 0.9, wheel_w * 0.6) + 300.0 * (speed > 0)
    return battery_w * mean_w / battery_w.clip(0).mean()


def drive(start_soc: float, rng: np.random.Generator, p) -> tuple[list, float]:
    """Two hours of driving from a parked, rested cell: peaks near 3C, regeneration near 1C."""
    nominal_wh = p["Nominal cell capacity [A.h]"] * 3.6
    power = drive_power(rng, 7200, mean_w=0.33 * nominal_wh)
    peak = 3.0 * nominal_wh
    power = np.clip(power, -1.0 * nominal_wh, peak)
    table = np.column_stack([np.arange(power.size, dtype=float), power])
    return [pybamm.step.power(table, period=1.0)], start_soc


def storage(case: Case, rng: np.random.Generator) -> tuple[list, float]:
    """A day of a storage system: night discharge blocks, morning partial charges, a midday
    CC-CV charge to full, afternoon and evening discharge blocks with rests, a partial
    recharge, and rest to the end of the day. Starts rested at an unknown SoC."""
    steps = ["Rest for 30 minutes (1 second period)"]
    planned_min = 30.0 + 150.0  # and about 2.5 h for the CC-CV charge with its rest

    def block(kind: str, c_low: float, c_high: float, minutes: tuple, rest: tuple) -> None:
        nonlocal planned_min
        run, pause = int(rng.integers(*minutes)), int(rng.integers(*rest))
        limit = case.v_max if kind == "Charge" else case.v_min + 0.3
        steps.extend([f"{kind} at {rng.uniform(c_low, c_high):.2f}C for {run} minutes"
                      f" or until {limit} V (1 second period)",
                      f"Rest for {pause} minutes (1 second period)"])  # fmt: skip
        planned_min += run + pause

    for _ in range(3):  # night: blocks of load
        block("Discharge", 0.2, 0.5, (30, 60), (15, 45))
    for _ in range(2):  # morning sun: partial charges
        block("Charge", 0.2, 0.4, (20, 40), (10, 30))
    steps += [*full_charge(case), "Rest for 45 minutes (1 second period)"]
    for _ in range(4):  # afternoon and evening
        block("Discharge", 0.2, 0.5, (20, 50), (10, 40))
    block("Charge", 0.3, 0.3, (20, 40), (20, 21))
    for _ in range(2):
        block("Discharge", 0.2, 0.5, (20, 40), (20, 60))
    steps.append(f"Rest for {max(30, int(24 * 60 - planned_min))} minutes (1 second period)")
    return steps, float(rng.uniform(0.3, 0.5))


def usage(case: Case, rng: np.random.Generator, p) -> tuple[list, float]:
    """What a BMS sees of an aged cell in a day: a CC-CV charge to full, an hour's rest,
    an hour and a half of driving, home at C/3 down to 3.3 V (the low-charge warning), two
    hours parked, another full charge and a rest."""
    nominal_wh = p["Nominal cell capacity [A.h]"] * 3.6
    power = drive_power(rng, 5400, mean_w=0.42 * nominal_wh)
    power = np.clip(power, -1.0 * nominal_wh, 3.0 * nominal_wh)
    table = np.column_stack([np.arange(power.size, dtype=float), power])
    steps = [
        "Rest for 10 minutes (1 second period)",
        *full_charge(case),
        "Rest for 1 hour (1 second period)",
        pybamm.step.power(table, period=1.0, termination=f"< {case.v_min + 0.2} V"),
        "Discharge at C/3 until 3.3 V (1 second period)",
        "Rest for 2 hours (1 second period)",
        *full_charge(case),
        "Rest for 30 minutes (1 second period)",
    ]
    return steps, 0.6


# --- instruments --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instrument:
    """Gain, offset, noise (1 sigma) and resolution of one channel; errors drawn per trace."""

    gain_sigma: float
    offset_sigma: float
    noise: float
    resolution: float

    def draw(self, rng: np.random.Generator) -> tuple[float, float]:
        return float(rng.normal(0.0, self.gain_sigma)), float(rng.normal(0.0, self.offset_sigma))

    def read(self, rng, values: np.ndarray, gain: float, offset: float) -> np.ndarray:
        seen = values * (1.0 + gain) + offset + rng.normal(0.0, self.noise, values.size)
        return np.round(seen / self.resolution) * self.resolution


@dataclass(frozen=True)
class FrontEnd:
    """The three channels of a recorder; currents scale with the cell's 1C."""

    voltage: Instrument
    current_c: Instrument  # in units of 1C
    temperature: Instrument
    drop_rows: float  # share of rows lost (a logger that misses samples)
    period_s: float = 1.0


CYCLER = FrontEnd(
    voltage=Instrument(0.0001, 0.0005, 0.0003, 0.0001),
    current_c=Instrument(0.0005, 0.0004, 0.0004, 0.0002),
    temperature=Instrument(0.0, 0.3, 0.05, 0.1),
    drop_rows=0.003,
)
COARSE_CYCLER = FrontEnd(  # a cycler logging every 2 s that loses 3 % of its rows
    voltage=CYCLER.voltage, current_c=CYCLER.current_c, temperature=CYCLER.temperature,
    drop_rows=0.03, period_s=2.0,
)  # fmt: skip
BMS = FrontEnd(  # a cell-monitor IC and a shunt amplifier as on a real BMS board
    voltage=Instrument(0.0005, 0.0015, 0.0008, 0.0005),
    current_c=Instrument(0.004, 0.0015, 0.002, 0.001),
    temperature=Instrument(0.0, 0.8, 0.1, 0.1),
    drop_rows=0.001,
)


def sample(solution, period_s: float, phase_s: float) -> dict[str, np.ndarray]:
    """The model's values at a logger's instants (every ``period_s`` from ``phase_s``), each
    interpolated inside the experiment step that holds it (never across a current edge)."""
    names = {
        "time": "Time [s]",
        "current": "Current [A]",
        "voltage": "Voltage [V]",
        "temp": "Volume-averaged cell temperature [C]",
        "x": "Average negative particle stoichiometry",
    }
    steps = [step for cycle in solution.cycles for step in cycle.steps]
    end = float(steps[-1]["Time [s]"].entries[-1])
    instants = np.arange(phase_s, end, period_s)
    out = {key: np.full(instants.size, np.nan) for key in names}
    ends = np.array([float(step["Time [s]"].entries[-1]) for step in steps])
    owner = np.searchsorted(ends, instants)
    for index, step in enumerate(steps):
        mine = owner == index
        if not mine.any():
            continue
        t = step["Time [s]"].entries
        for key, name in names.items():
            out[key][mine] = np.interp(instants[mine], t, step[name].entries)
    out["time"] = instants
    return out


def record(case: Case, front: FrontEnd, rng, solution, window: Window) -> tuple:
    """The trace a logger writes (sensor errors, resolution, lost rows) and the truth."""
    capacity_1c = pybamm.ParameterValues(case.parameter_set)["Nominal cell capacity [A.h]"]
    period_s = front.period_s
    values = sample(solution, period_s, float(rng.uniform(0.05, 0.95) * period_s))
    v_gain, v_off = front.voltage.draw(rng)
    i_gain, i_off = front.current_c.draw(rng)
    _, t_off = front.temperature.draw(rng)
    true_current = -values["current"]  # PyBaMM discharges with positive current
    amps = Instrument(front.current_c.gain_sigma, 0.0, front.current_c.noise * capacity_1c,
                      front.current_c.resolution * capacity_1c)  # fmt: skip
    frame = pd.DataFrame(
        {
            "time_s": np.round(values["time"], 3),
            "current_a": amps.read(rng, true_current, i_gain, i_off * capacity_1c),
            "voltage_v": front.voltage.read(rng, values["voltage"], v_gain, v_off),
            "temp_c": front.temperature.read(rng, values["temp"], 0.0, t_off),
            "true_soc_pct": np.round(
                100.0 * (values["x"] - window.x0) / (window.x100 - window.x0), 3
            ),
        }
    )
    keep = rng.random(len(frame)) >= front.drop_rows
    keep[0] = keep[-1] = True
    errors = {
        "voltage_gain": v_gain, "voltage_offset_v": v_off,
        "current_gain": i_gain, "current_offset_a": i_off * capacity_1c,
        "temp_offset_c": t_off, "rows_dropped": int((~keep).sum()),
    }  # fmt: skip
    return frame[keep].reset_index(drop=True), errors


# --- running a case -----------------------------------------------------------------------------
def run_experiment(case: Case, p, steps: list, initial_soc: float):
    """Solve with tight tolerances; the IDA solver's defaults where a drive's kinks defeat them."""
    for tolerances in ({"rtol": 1e-6, "atol": 1e-8}, {}):
        simulation = pybamm.Simulation(
            pybamm.lithium_ion.DFN(model_options(case)),
            parameter_values=p,
            experiment=pybamm.Experiment(steps),
            solver=pybamm.IDAKLUSolver(**tolerances),
        )
        try:
            return simulation.solve(initial_soc=initial_soc)
        except pybamm.SolverError:
            if not tolerances:
                raise
    raise AssertionError("unreachable")


def write_trace(frame: pd.DataFrame, path: Path, truth: bool) -> None:
    """Parquet, zstd: instrument columns as float32 (they are quantised far coarser), times
    byte-split (they compress to almost nothing); the true SoC only where tests need it."""
    frame = frame.astype({"current_a": "float32", "voltage_v": "float32", "temp_c": "float32"})
    if not truth:
        frame = frame.drop(columns="true_soc_pct")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", compression_level=19, use_dictionary=False,
                   column_encoding={"time_s": "BYTE_STREAM_SPLIT"})  # fmt: skip


def pulse_resistance(case: Case, p, soc: float = 0.5) -> dict[str, float]:
    """The DFN's resistance seen 1 s and 10 s into a 1C discharge pulse from rest."""
    steps = ["Rest for 10 seconds (1 second period)",
             "Discharge at 1C for 10 seconds (0.05 second period)"]  # fmt: skip
    isothermal = {**model_options(case), "thermal": "isothermal"}
    model = pybamm.lithium_ion.DFN(isothermal)
    solution = pybamm.Simulation(
        model, parameter_values=p, experiment=pybamm.Experiment(steps),
        solver=pybamm.IDAKLUSolver(rtol=1e-8, atol=1e-10),
    ).solve(initial_soc=soc)  # fmt: skip
    t, v = solution["Time [s]"].entries, solution["Voltage [V]"].entries
    i = solution["Current [A]"].entries
    rest_v = v[t <= 10.0][-1]
    pulse = t > 10.0
    amps = float(np.median(i[pulse]))
    return {
        f"{s:g}s_ohm": float((rest_v - np.interp(10.0 + s, t[pulse], v[pulse])) / amps)
        for s in (0.1, 1.0, 10.0)
    }


def run_case(case: Case, only_tests: list[str] | None = None) -> None:
    folder = OUT / case.key
    folder.mkdir(parents=True, exist_ok=True)
    p = parameter_values(case)
    window = soc_window(p)
    truth: dict = {
        "case": case.key,
        "parameter_set": case.parameter_set,
        "chemistry": case.chemistry,
        "chamber_temp_c": case.temp_c,
        "voltage_limits_v": [case.v_min, case.v_max],
        "nominal_capacity_ah": pybamm.ParameterValues(case.parameter_set)[
            "Nominal cell capacity [A.h]"
        ],
        "capacity_ah": window.capacity_ah,
        "soc_definition": "negative-electrode stoichiometry between the equilibrium states at "
        "the lower and upper voltage limits",
        "pybamm_version": pybamm.__version__,
        "model": "DFN " + json.dumps(model_options(case)),
        "traces": {},
    }
    soc, mean = ocv_curve(case, p, window)
    truth["ocv"] = {"soc": soc.round(4).tolist(), "mean_v": mean.round(5).tolist()}
    if case.hysteresis_v:
        truth["ocv"]["discharge_v"] = ocv_curve(case, p, window, -1.0)[1].round(5).tolist()
        truth["ocv"]["charge_v"] = ocv_curve(case, p, window, +1.0)[1].round(5).tolist()
    truth["pulse_resistance_50pct"] = pulse_resistance(case, p)
    if case.ageing is not None:
        truth["ageing"] = case.ageing.__dict__
        fresh = parameter_values(Case(**{**case.__dict__, "ageing": None}))
        truth["fresh_capacity_ah"] = soc_window(fresh).capacity_ah
        truth["fresh_pulse_resistance_50pct"] = pulse_resistance(case, fresh)
    runs = [(test, None) for test in case.tests if test != "drive"]
    if "drive" in case.tests:
        runs += [(f"drive-{n + 1}", start) for n, start in enumerate(case.drive_starts)]
    previous = folder / "truth.json"
    if only_tests and previous.exists():
        truth["traces"] = json.loads(previous.read_text())["traces"]
    for test, drive_start in runs:
        rng = np.random.default_rng([case.seed, zlib.crc32(test.encode())])
        if only_tests and test not in only_tests and test.split("-")[0] not in only_tests:
            continue
        started = time.perf_counter()
        if test in ("hppc", "hppc-chained"):
            steps, start = hppc(case, chained=test == "hppc-chained")
        elif test == "slow":
            steps, start = slow(case)
        elif test.startswith("drive"):
            steps, start = drive(drive_start, rng, p)
        elif test == "storage":
            steps, start = storage(case, rng)
        else:
            steps, start = usage(case, rng, p)
        solution = run_experiment(case, p, steps, start)
        front = {"hppc": CYCLER, "slow": CYCLER, "hppc-chained": COARSE_CYCLER}.get(test, BMS)
        frame, errors = record(case, front, rng, solution, window)
        path = folder / f"{test}.parquet"
        write_trace(frame, path, truth=not test.startswith(("hppc", "slow")))
        truth["traces"][test] = {
            "rows": len(frame), "hours": float(frame["time_s"].iloc[-1] / 3600.0),
            "instrument": "bms front end" if front is BMS else "cycler",
            "period_s": front.period_s,
            "start_soc_pct": float(frame["true_soc_pct"].iloc[0]), **errors,
        }  # fmt: skip
        print(f"{case.key} {test}: {len(frame)} rows, {path.stat().st_size / 1e3:.0f} kB, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="case keys to (re)generate")
    parser.add_argument("--tests", nargs="*", help="only these tests (hppc, slow, drive, ...)")
    args = parser.parse_args()
    for case in CASES:
        if args.only and case.key not in args.only:
            continue
        run_case(case, args.tests)


if __name__ == "__main__":
    main()
