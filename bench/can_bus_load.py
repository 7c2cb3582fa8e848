"""CAN bus load of a 16-slave, 288S string, computed from the frames it really sends.

The built-in ``ess-string-288s`` runs closed loop for a minute of simulated time with its CAN
log on, once at the firmware's 100 ms main cycle (``FIRMWARE_TIMING``) and once at the
scenario's own 1 s cycle. The log is read back with ``can.LogReader`` and every frame's exact
on-wire length (stuff bits and the 3-bit intermission included) is summed per channel at
500 kbit/s (the internal bus, and the charger and vehicle buses where the scenario has them).
The references beside it are the same frames unstuffed (the least they can take)
and with worst-case stuffing (the most). Every cycle's frames share its start time in the
log, so the busiest 100 ms window is one cycle's burst: the time the bus needs to carry the
master's commands and all slaves' answers. Target: below 50 %, on average and in that window.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import can

from cellwarden.comms.bus_load import busiest_window, frame_bits, stuffed_region
from cellwarden.comms.internal_protocol import internal_codec
from cellwarden.model import Scenario
from cellwarden.simulation.campaign import FIRMWARE_TIMING
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation

SCENARIO = "ess-string-288s"
SIMULATED_S = 60.0
BITRATE = 500_000
WINDOW_S = 0.1
TARGET_PCT = 50.0
FIXED_BITS = 13  # CRC delimiter, ACK slot and delimiter, EOF, intermission: never stuffed


def firmware_timed(scenario: Scenario) -> Scenario:
    """The scenario at the rates a real board runs (100 ms main cycle)."""
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    data["timing"] = FIRMWARE_TIMING
    return Scenario.model_validate(data)


def _region_bits(message: can.Message) -> int:
    """Bits from SOF to the end of the CRC, before stuffing."""
    return len(stuffed_region(message.arbitration_id, bytes(message.data), message.is_extended_id))


def _rows_for(scenario: Scenario) -> tuple[list[dict], list[dict]]:
    """Load rows and frame-count rows, one per channel."""
    period_s = scenario.timing.main_period_s
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "bus.log"
        started = time.perf_counter()
        Simulation(scenario, duration_s=SIMULATED_S, can_log=log).run()
        wall_s = time.perf_counter() - started
        messages = list(can.LogReader(log))
    senders = {
        frame_id: codec.message.senders[0] for frame_id, codec in internal_codec().by_id.items()
    }
    by_channel: dict[str, list[can.Message]] = defaultdict(list)
    for message in messages:
        by_channel[message.channel].append(message)
    loads, counts = [], []
    for channel, frames in sorted(by_channel.items()):
        cycles = round(SIMULATED_S / period_s) + 1  # main cycles at 0, T, ..., SIMULATED_S
        duration_s = cycles * period_s
        bits = [frame_bits(m.arbitration_id, bytes(m.data), m.is_extended_id) for m in frames]
        regions = [_region_bits(m) for m in frames]
        least = [region + FIXED_BITS for region in regions]
        worst = [region + (region - 1) // 4 + FIXED_BITS for region in regions]  # every 4th
        per_cycle: dict[float, int] = defaultdict(int)
        worst_per_cycle: dict[float, int] = defaultdict(int)
        for message, size, most in zip(frames, bits, worst, strict=True):
            per_cycle[round(message.timestamp, 6)] += size
            worst_per_cycle[round(message.timestamp, 6)] += most
        internal = channel.startswith("internal")  # the other buses have their own DBC files
        slaves = {senders[m.arbitration_id] for m in frames} - {"Master"} if internal else set()
        from_master = sum(senders[m.arbitration_id] == "Master" for m in frames) if internal else 0
        _, window_load = busiest_window(frames, BITRATE, WINDOW_S)
        load_pct = 100.0 * sum(bits) / (BITRATE * duration_s)
        loads.append(
            {
                "cycle_ms": 1e3 * period_s,
                "channel": channel,
                "load_pct": load_pct,
                "unstuffed_pct": 100.0 * sum(least) / (BITRATE * duration_s),
                "worst_stuffing_pct": 100.0 * sum(worst) / (BITRATE * duration_s),
                "worst_100ms_pct": 100.0 * window_load,
                "burst_ms": 1e3 * max(per_cycle.values()) / BITRATE,
                "worst_stuffing_burst_ms": 1e3 * max(worst_per_cycle.values()) / BITRATE,
                "below_50pct": str(load_pct < TARGET_PCT and 100.0 * window_load < TARGET_PCT),
            }
        )
        counts.append(
            {
                "cycle_ms": 1e3 * period_s,
                "channel": channel,
                "simulated_s": duration_s,
                "frames": len(frames),
                "per_cycle": len(frames) / cycles,
                "master_per_cycle": from_master / cycles if internal else "-",
                "slaves": len(slaves),
                "per_slave_per_cycle": (
                    (len(frames) - from_master) / cycles / len(slaves) if slaves else "-"
                ),
                "bits_per_frame": sum(bits) / len(frames),
                "stuff_bits_per_frame": (sum(bits) - sum(least)) / len(frames),
                "sim_wall_s": wall_s,
                "load_avg": os.getloadavg()[0],
            }
        )
    return loads, counts


def measure() -> dict[str, list[dict]]:
    scenario = load_builtin(SCENARIO)
    firmware_loads, firmware_counts = _rows_for(firmware_timed(scenario))
    own_loads, own_counts = _rows_for(scenario)
    return {
        "can_bus_load (500 kbit/s, % of bus time)": firmware_loads + own_loads,
        "can_bus_frames": firmware_counts + own_counts,
    }
