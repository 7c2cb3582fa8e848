"""A cellular uplink in simulation: bandwidth, latency, coverage gaps and outages, on the
simulated clock.

The edge asks the link to carry each message; the link says when it arrives (after the bytes
before it, its own transmission time and the latency) or refuses while it is down or already
busy a full second ahead. Coverage gaps come from a seeded random process (a vehicle driving
through dead zones); outages are the scenario's or the command line's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.model.edge import LinkSpec

BACKLOG_S = 1.0  # the radio queues at most this much transmission time ahead


@dataclass(frozen=True)
class LinkProfile:
    """A radio technology's uplink: usable throughput, one-way latency, typical signal."""

    uplink_bps: float
    latency_s: float
    signal_dbm: float


PROFILES = {
    "2g": LinkProfile(uplink_bps=20_000, latency_s=0.7, signal_dbm=-85),
    "lte-m": LinkProfile(uplink_bps=300_000, latency_s=0.15, signal_dbm=-95),
    "nb-iot": LinkProfile(uplink_bps=25_000, latency_s=1.6, signal_dbm=-105),
}


class CellularLink:
    """Availability and timing of the uplink over one run."""

    def __init__(self, spec: LinkSpec, duration_s: float, seed: int) -> None:
        self.profile = PROFILES[spec.technology]
        self.windows = sorted(
            [(o.at_s, o.at_s + o.duration_s) for o in spec.outages]
            + _coverage_gaps(spec, duration_s, seed)
        )
        self._busy_until_s = 0.0
        self.bytes_sent = 0
        self.bytes_by_kind: dict[str, int] = {}

    def up(self, now_s: float) -> bool:
        return not any(start <= now_s < end for start, end in self.windows)

    def carry(self, now_s: float, size_bytes: int, kind: str) -> float | None:
        """Arrival time of a message of ``size_bytes`` sent now, or None when it cannot go."""
        if not self.up(now_s):
            return None
        start = max(self._busy_until_s, now_s)
        if start - now_s > BACKLOG_S:
            return None
        self._busy_until_s = start + 8.0 * size_bytes / self.profile.uplink_bps
        self.count(size_bytes, kind)
        return self._busy_until_s + self.profile.latency_s

    def count(self, size_bytes: int, kind: str) -> None:
        """Bytes that cross the link (also downlink, connects and keep-alives)."""
        self.bytes_sent += size_bytes
        self.bytes_by_kind[kind] = self.bytes_by_kind.get(kind, 0) + size_bytes


def _coverage_gaps(spec: LinkSpec, duration_s: float, seed: int) -> list[tuple[float, float]]:
    if spec.coverage_gaps_per_day <= 0:
        return []
    rng = np.random.default_rng([seed, 0x11AC])
    gaps, now_s = [], 0.0
    rate_per_s = spec.coverage_gaps_per_day / 86400.0
    while True:
        now_s += rng.exponential(1.0 / rate_per_s)
        if now_s >= duration_s:
            return gaps
        length_s = rng.exponential(spec.coverage_gap_mean_s)
        gaps.append((now_s, now_s + length_s))
